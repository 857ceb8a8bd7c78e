"""The paper otr implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="One-Token Rollout: Guiding Supervised Fine-Tuning of LLMs with Policy Gradient",
    arxiv="2509.26313",
    citation="""@article{ming2025onetoken,
  title         = {One-Token Rollout: Guiding Supervised Fine-Tuning of {LLMs} with Policy Gradient},
  author        = {Ming, Rui and Wu, Haoyuan and others},
  journal       = {arXiv preprint arXiv:2509.26313},
  year          = {2025},
  eprint        = {2509.26313},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2509.26313}
}""",
)
