"""The survey peft_fm_survey implements as a tool: light, so registering the plugin imports no torch."""

from trl_ext import Paper

PAPER = Paper(
    title="Parameter-Efficient Fine-Tuning for Foundation Models",
    arxiv="2501.13787",
    citation="""@article{zhang2025parameter,
  title         = {Parameter-Efficient Fine-Tuning for Foundation Models},
  author        = {Zhang, Dan and Feng, Tao and Xue, Lingxiao and Wang, Yusen and Dong, Yuxiao and Tang, Jie},
  journal       = {arXiv preprint arXiv:2501.13787},
  year          = {2025},
  eprint        = {2501.13787},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2501.13787}
}""",
)
