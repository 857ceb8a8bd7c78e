"""The paper lta_thinker implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="LTA-thinker: Latent Thought-Augmented Training Framework for Large Language Models on Complex Reasoning",
    arxiv="2509.12875",
    citation="""@article{lta_thinker2025,
  title         = {LTA-thinker: Latent Thought-Augmented Training Framework for Large Language Models on
                   Complex Reasoning},
  journal       = {arXiv preprint arXiv:2509.12875},
  year          = {2025},
  eprint        = {2509.12875},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2509.12875}
}""",
)
