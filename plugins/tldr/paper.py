"""The paper every tldr component cites (kept apart so that registration imports nothing else)."""

from trl_ext import Paper

PAPER = Paper(
    title="Making Small Language Models Efficient Reasoners: Intervention, Supervision, Reinforcement",
    arxiv="2505.07961",
    citation="""@article{zhang2025efficient,
  title   = {Making Small Language Models Efficient Reasoners: Intervention, Supervision, Reinforcement},
  author  = {Zhang, Xuechen and Huang, Zijian and Ni, Chenshun and Xiong, Ziyang and Chen, Jiasi and Oymak, Samet},
  journal = {arXiv preprint arXiv:2505.07961},
  year    = {2025},
  url     = {https://arxiv.org/abs/2505.07961}
}""",
)
