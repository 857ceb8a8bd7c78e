"""The paper srppo implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Self-Rewarding PPO: Aligning Large Language Models with Demonstrations Only",
    arxiv="2510.21090",
    citation="""@article{srppo2025,
  title   = {Self-Rewarding {PPO}: Aligning Large Language Models with Demonstrations Only},
  journal = {arXiv preprint arXiv:2510.21090},
  year    = {2025},
  url     = {https://arxiv.org/abs/2510.21090}
}""",
)
