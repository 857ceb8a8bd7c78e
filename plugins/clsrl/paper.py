"""The paper clsrl implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="CLS-RL: Image Classification with Rule-Based Reinforcement Learning "
    "(later: Think or Not Think: A Study of Explicit Thinking in Rule-Based Visual Reinforcement Fine-Tuning)",
    arxiv="2503.16188",
    citation="""@article{li2025clsrl,
  title   = {{CLS-RL}: Image Classification with Rule-Based Reinforcement Learning},
  author  = {Li, Ming and Zhong, Jike and Zhao, Shitian and Lai, Yuxiang and Zhang, Haoquan and Zhu, Wang Bill and
             Zhang, Kaipeng},
  journal = {arXiv preprint arXiv:2503.16188},
  year    = {2025},
  url     = {https://arxiv.org/abs/2503.16188}
}""",
)
