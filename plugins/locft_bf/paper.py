"""The paper locft_bf implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Fine-tuning Done Right in Model Editing",
    arxiv="2509.22072",
    citation="""@inproceedings{locft2026,
  title         = {Fine-tuning Done Right in Model Editing},
  booktitle     = {International Conference on Learning Representations (ICLR)},
  year          = {2026},
  eprint        = {2509.22072},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2509.22072}
}""",
)
