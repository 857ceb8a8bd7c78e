"""The paper past implements: light, so registering the plugin imports no torch (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Knowledge is Not Enough: Injecting RL Skills for Continual Adaptation",
    arxiv="2601.11258",
    citation="""@inproceedings{past2026,
  title         = {Knowledge is Not Enough: Injecting RL Skills for Continual Adaptation},
  booktitle     = {Proceedings of the Annual Meeting of the Association for Computational Linguistics (ACL)},
  year          = {2026},
  eprint        = {2601.11258},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2601.11258}
}""",
)
