"""The paper lt_sft implements: light, so registering the plugin imports no torch (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Composable Sparse Fine-Tuning for Cross-Lingual Transfer",
    arxiv="2110.07560",
    citation="""@inproceedings{ansell2022composable,
  title         = {Composable Sparse Fine-Tuning for Cross-Lingual Transfer},
  author        = {Ansell, Alan and Ponti, Edoardo Maria and Korhonen, Anna and Vuli{\\'c}, Ivan},
  booktitle     = {Proceedings of the 60th Annual Meeting of the Association for Computational Linguistics},
  year          = {2022},
  eprint        = {2110.07560},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2110.07560}
}""",
)
