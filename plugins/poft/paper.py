"""The paper poft implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Preference-Oriented Supervised Fine-Tuning: Favoring Target Model Over Aligned Large Language Models",
    arxiv="2412.12865",
    citation="""@article{fan2024poft,
  title         = {Preference-Oriented Supervised Fine-Tuning: Favoring Target Model Over Aligned Large Language
                   Models},
  author        = {Fan, Yuchen and Hong, Yuzhong and Wang, Qiushi and Bao, Junwei and Jiang, Hongfei and
                   Song, Yang},
  journal       = {arXiv preprint arXiv:2412.12865},
  year          = {2024},
  eprint        = {2412.12865},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2412.12865}
}""",
)
