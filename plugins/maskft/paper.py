from trl_ext import Paper

PAPER = Paper(
    title="Diffusion-Inspired Masked Fine-Tuning for Knowledge Injection in Autoregressive LLMs",
    arxiv="2510.09885",
    citation="""@article{maskft2025,
  title   = {Diffusion-Inspired Masked Fine-Tuning for Knowledge Injection in Autoregressive LLMs},
  journal = {arXiv preprint arXiv:2510.09885},
  year    = {2025},
  url     = {https://arxiv.org/abs/2510.09885}
}""",
)
