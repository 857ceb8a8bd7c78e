"""The paper asft implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Anchored Supervised Fine-Tuning",
    arxiv="2509.23753",
    citation="""@article{zhu2025anchored,
  title         = {Anchored Supervised Fine-Tuning},
  author        = {Zhu, He and Su, Junyou and Lai, Peng and Ma, Ren and Zhang, Wenjia and Yang, Linyi and
                   Chen, Guanhua},
  journal       = {arXiv preprint arXiv:2509.23753},
  year          = {2025},
  eprint        = {2509.23753},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2509.23753}
}""",
)
