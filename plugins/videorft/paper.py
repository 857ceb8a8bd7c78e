"""The paper videorft implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="VideoRFT: Incentivizing Video Reasoning Capability in MLLMs via Reinforced Fine-Tuning",
    arxiv="2505.12434",
    citation="""@article{wang2025videorft,
  title   = {{VideoRFT}: Incentivizing Video Reasoning Capability in {MLLMs} via Reinforced Fine-Tuning},
  author  = {Wang, Qi and Yu, Yanrui and Yuan, Ye and Mao, Rui and Zhou, Tianfei},
  journal = {arXiv preprint arXiv:2505.12434},
  year    = {2025},
  url     = {https://arxiv.org/abs/2505.12434}
}""",
)
