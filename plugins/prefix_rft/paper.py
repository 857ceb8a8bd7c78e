"""The paper prefix_rft implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Blending Supervised and Reinforcement Fine-Tuning with Prefix Sampling",
    arxiv="2507.01679",
    citation="""@article{huang2025prefixrft,
  title         = {Blending Supervised and Reinforcement Fine-Tuning with Prefix Sampling},
  journal       = {arXiv preprint arXiv:2507.01679},
  year          = {2025},
  eprint        = {2507.01679},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2507.01679}
}""",
)
