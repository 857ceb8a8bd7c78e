"""The paper chord implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="On-Policy RL Meets Off-Policy Experts: Harmonizing Supervised Fine-Tuning and Reinforcement Learning via "
    "Dynamic Weighting",
    arxiv="2508.11408",
    citation="""@article{chord2025,
  title         = {On-Policy {RL} Meets Off-Policy Experts: Harmonizing Supervised Fine-Tuning and Reinforcement
                   Learning via Dynamic Weighting},
  author        = {Zhang, Wenhao and Xie, Yuexiang and Sun, Yuchang and Chen, Yanxi and Wang, Guoyin and Li, Yaliang
                   and Ding, Bolin and Zhou, Jingren},
  journal       = {arXiv preprint arXiv:2508.11408},
  year          = {2025},
  eprint        = {2508.11408},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2508.11408}
}""",
)
