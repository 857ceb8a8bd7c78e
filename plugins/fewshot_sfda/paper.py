"""The paper fewshot_sfda implements: light, so registering the plugin imports nothing heavy."""

from trl_ext import Paper

PAPER = Paper(
    title="Few-shot Fine-tuning is All You Need for Source-free Domain Adaptation",
    arxiv="2304.00792",
    citation="""@article{lee2023fewshot,
  title         = {Few-shot Fine-tuning is All You Need for Source-free Domain Adaptation},
  author        = {Lee, Suho and Seong, Seungwon and Lee, Sungwon and Kang, Junsuk and Shin, Hyunjung},
  journal       = {arXiv preprint arXiv:2304.00792},
  year          = {2023},
  eprint        = {2304.00792},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2304.00792}
}""",
)
