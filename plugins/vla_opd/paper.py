"""The paper vla_opd implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="VLA-OPD: Bridging Offline SFT and Online RL for Vision-Language-Action Models via On-Policy Distillation",
    arxiv="2603.26666",
    citation="""@article{vlaopd2026,
  title         = {VLA-OPD: Bridging Offline SFT and Online RL for Vision-Language-Action Models via On-Policy
                   Distillation},
  journal       = {arXiv preprint arXiv:2603.26666},
  year          = {2026},
  eprint        = {2603.26666},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2603.26666}
}""",
)
