"""The paper every tq_star component cites (kept apart so that registration imports nothing else)."""

from trl_ext import Paper

PAPER = Paper(
    title="Transfer Q Star: Principled Decoding for LLM Alignment",
    arxiv="2405.20495",
    citation="""@inproceedings{chakraborty2024transfer,
  title     = {Transfer Q Star: Principled Decoding for {LLM} Alignment},
  author    = {Chakraborty, Souradip and Ghosal, Soumya Suvra and Yin, Ming and Manocha, Dinesh and Wang, Mengdi and
               Bedi, Amrit Singh and Huang, Furong},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2024},
  url       = {https://arxiv.org/abs/2405.20495}
}""",
)
