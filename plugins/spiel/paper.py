"""The paper spiel implements: light, so registering the plugin imports no torch (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Scaling Sparse Fine-Tuning to Large Language Models",
    arxiv="2401.16405",
    citation="""@article{ansell2024spiel,
  title         = {Scaling Sparse Fine-Tuning to Large Language Models},
  author        = {Ansell, Alan and Vuli{\\'c}, Ivan and Sterz, Hannah and Korhonen, Anna and Ponti, Edoardo M.},
  journal       = {arXiv preprint arXiv:2401.16405},
  year          = {2024},
  eprint        = {2401.16405},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2401.16405}
}""",
)
