"""The paper conmax implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="ConMax: Confidence-Maximizing Compression for Efficient Chain-of-Thought Reasoning",
    arxiv="2601.04973",
    citation="""@article{conmax2026,
  title   = {{ConMax}: Confidence-Maximizing Compression for Efficient Chain-of-Thought Reasoning},
  journal = {arXiv preprint arXiv:2601.04973},
  year    = {2026},
  url     = {https://arxiv.org/abs/2601.04973}
}""",
)
