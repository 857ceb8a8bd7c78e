"""The paper curiosft implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Learning While Staying Curious: Entropy-Preserving Supervised Fine-Tuning via Adaptive Self-Distillation "
    "for Large Reasoning Models",
    arxiv="2602.02244",
    citation="""@article{wang2026learning,
  title         = {Learning While Staying Curious: Entropy-Preserving Supervised Fine-Tuning via Adaptive
                   Self-Distillation for Large Reasoning Models},
  author        = {Wang, Hao and Gu, Hao and Piao, Hongming and Gong, Kaixiong and Ye, Yuxiao and Yue, Xiangyu and
                   Han, Sirui and Guo, Yike and Wu, Dapeng},
  journal       = {arXiv preprint arXiv:2602.02244},
  year          = {2026},
  eprint        = {2602.02244},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2602.02244}
}""",
)
