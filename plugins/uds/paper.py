"""The paper uds implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Utility-Diversity Aware Online Batch Selection for LLM Supervised Fine-tuning",
    arxiv="2510.16882",
    citation="""@inproceedings{uds2026,
  title         = {Utility-Diversity Aware Online Batch Selection for {LLM} Supervised Fine-tuning},
  booktitle     = {Proceedings of the International Conference on Machine Learning (ICML)},
  year          = {2026},
  eprint        = {2510.16882},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2510.16882}
}""",
)
