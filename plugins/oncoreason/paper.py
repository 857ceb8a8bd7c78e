"""The paper oncoreason implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="OncoReason: Structuring Clinical Reasoning in LLMs for Robust and Interpretable Survival Prediction",
    arxiv="2510.17532",
    citation="""@article{oncoreason2025,
  title   = {{OncoReason}: Structuring Clinical Reasoning in {LLMs} for Robust and Interpretable Survival Prediction},
  journal = {arXiv preprint arXiv:2510.17532},
  year    = {2025},
  url     = {https://arxiv.org/abs/2510.17532}
}""",
)
