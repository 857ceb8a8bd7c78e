"""The paper ssf implements: light, so registering the plugin imports no torch (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Scaling & Shifting Your Features: A New Baseline for Efficient Model Tuning",
    arxiv="2210.08823",
    citation="""@inproceedings{lian2022scaling,
  title         = {Scaling \\& Shifting Your Features: A New Baseline for Efficient Model Tuning},
  author        = {Lian, Dongze and Zhou, Daquan and Feng, Jiashi and Wang, Xinchao},
  booktitle     = {Advances in Neural Information Processing Systems},
  year          = {2022},
  eprint        = {2210.08823},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2210.08823}
}""",
)
