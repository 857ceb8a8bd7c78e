"""The paper this plugin implements."""

from trl_ext import Paper

PAPER = Paper(
    title="SFT-GRPO Data Overlap as a Post-Training Hyperparameter for Autoformalization",
    arxiv="2604.13515",
    citation="""@article{sftgrpooverlap2026,
  title   = {SFT-GRPO Data Overlap as a Post-Training Hyperparameter for Autoformalization},
  journal = {arXiv preprint arXiv:2604.13515},
  year    = {2026},
  url     = {https://arxiv.org/abs/2604.13515}
}""",
)
