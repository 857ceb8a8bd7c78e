"""The paper qtuning implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Winning the Pruning Gamble: A Unified Approach to Joint Sample and Token Pruning for Efficient Supervised "
    "Fine-Tuning",
    arxiv="2509.23873",
    citation="""@article{wang2025winning,
  title         = {Winning the Pruning Gamble: A Unified Approach to Joint Sample and Token Pruning for Efficient
                   Supervised Fine-Tuning},
  author        = {Wang, Shaobo and Wang, Jiaming and Zhang, Jiajun and Wang, Cong and Min, Yue and Wen, Zichen
                   and Huang, Fei and Jiang, Huiqiang and Lin, Junyang and Liu, Dayiheng and Zhang, Linfeng},
  journal       = {arXiv preprint arXiv:2509.23873},
  year          = {2025},
  eprint        = {2509.23873},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2509.23873}
}""",
)
