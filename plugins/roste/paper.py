"""The paper roste implements: light, so registering the plugin imports no torch (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="RoSTE: An Efficient Quantization-Aware Supervised Fine-Tuning Approach for Large Language Models",
    arxiv="2502.09003",
    citation="""@inproceedings{wei2025roste,
  title         = {{RoSTE}: An Efficient Quantization-Aware Supervised Fine-Tuning Approach for Large Language
                   Models},
  author        = {Wei, Quan and Yau, Chung-Yiu and Wai, Hoi-To and Zhao, Yang and Kang, Dongyeop and Park,
                   Youngsuk and Hong, Mingyi},
  booktitle     = {International Conference on Machine Learning},
  year          = {2025},
  eprint        = {2502.09003},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2502.09003}
}""",
)
