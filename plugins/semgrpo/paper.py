"""The paper semgrpo implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Shaping Explanations: Semantic Reward Modeling with Encoder-Only Transformers for GRPO",
    arxiv="2509.13081",
    citation="""@article{pappone2025shaping,
  title   = {Shaping Explanations: Semantic Reward Modeling with Encoder-Only Transformers for {GRPO}},
  author  = {Pappone, Francesco and Lazzaroni, Ruggero Marino and Califano, Federico and Gentile, Niccolò and
             Marras, Roberto},
  journal = {arXiv preprint arXiv:2509.13081},
  year    = {2025},
  url     = {https://arxiv.org/abs/2509.13081}
}""",
)
