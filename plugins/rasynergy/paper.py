"""The paper rasynergy implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="When Actions Teach You to Think: Reasoning-Action Synergy via Reinforcement Learning in Conversational "
    "Agents",
    arxiv="2512.11277",
    citation="""@article{rasynergy2025,
  title   = {When Actions Teach You to Think: Reasoning-Action Synergy via Reinforcement Learning in Conversational
             Agents},
  journal = {arXiv preprint arXiv:2512.11277},
  year    = {2025},
  url     = {https://arxiv.org/abs/2512.11277}
}""",
)
