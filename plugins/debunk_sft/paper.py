from trl_ext import Paper

PAPER = Paper(
    title="Debunk the Myth of SFT Generalization",
    arxiv="2510.00237",
    citation="""@article{lin2025debunk,
  title   = {Debunk the Myth of SFT Generalization},
  author  = {Lin, Xiaofeng and others},
  journal = {arXiv preprint arXiv:2510.00237},
  year    = {2025},
  url     = {https://arxiv.org/abs/2510.00237}
}""",
)
