"""The paper lfu implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Learning from the Undesirable: Robust Adaptation of Language Models without Forgetting",
    arxiv="2511.13052",
    citation="""@inproceedings{nam2026lfu,
  title         = {Learning from the Undesirable: Robust Adaptation of Language Models without Forgetting},
  author        = {Nam, Yunhun and Kim, Jaehyung and Jeong, Jongheon},
  booktitle     = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year          = {2026},
  eprint        = {2511.13052},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2511.13052}
}""",
)
