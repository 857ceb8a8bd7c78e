"""The paper soft implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Sorted LLaMA: Unlocking the Potential of Intermediate Layers of Large Language Models for Dynamic Inference "
    "Using Sorted Fine-Tuning (SoFT)",
    arxiv="2309.08968",
    citation="""@article{kavehzadeh2023sorted,
  title         = {Sorted {LLaMA}: Unlocking the Potential of Intermediate Layers of Large Language Models for
                   Dynamic Inference Using Sorted Fine-Tuning ({SoFT})},
  author        = {Kavehzadeh, Parsa and Valipour, Mojtaba and Tahaei, Marzieh and Ghodsi, Ali and Chen, Boxing and
                   Rezagholizadeh, Mehdi},
  journal       = {arXiv preprint arXiv:2309.08968},
  year          = {2023},
  eprint        = {2309.08968},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2309.08968}
}""",
)
