"""The paper budget_split implements: light, so registering the plugin imports nothing heavy."""

from trl_ext import Paper

PAPER = Paper(
    title="Balancing the Budget: Understanding Trade-offs Between Supervised and Preference-Based Finetuning",
    arxiv="2502.11284",
    citation="""@inproceedings{balancingbudget2025,
  title     = {Balancing the Budget: Understanding Trade-offs Between Supervised and Preference-Based Finetuning},
  booktitle = {Proceedings of the 63rd Annual Meeting of the Association for Computational Linguistics (ACL)},
  year      = {2025},
  url       = {https://arxiv.org/abs/2502.11284}
}""",
)
