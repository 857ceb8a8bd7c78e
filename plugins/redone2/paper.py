"""The paper redone2 implements: light, so registering the plugin imports nothing heavy."""

from trl_ext import Paper

PAPER = Paper(
    title="RedOne 2.0: Rethinking Domain-specific LLM Post-Training in Social Networking Services",
    arxiv="2511.07070",
    citation="""@article{redone2_2025,
  title   = {RedOne 2.0: Rethinking Domain-specific LLM Post-Training in Social Networking Services},
  journal = {arXiv preprint arXiv:2511.07070},
  year    = {2025},
  url     = {https://arxiv.org/abs/2511.07070}
}""",
)
