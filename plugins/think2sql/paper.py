"""The paper think2sql implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Think2SQL: Reinforce LLM Reasoning Capabilities for Text2SQL",
    arxiv="2504.15077",
    citation="""@article{papicchio2025think2sql,
  title   = {Think2{SQL}: Reinforce {LLM} Reasoning Capabilities for {Text2SQL}},
  author  = {Papicchio, Simone and Rossi, Simone and Cagliero, Luca and Papotti, Paolo},
  journal = {arXiv preprint arXiv:2504.15077},
  year    = {2025},
  url     = {https://arxiv.org/abs/2504.15077}
}""",
)
