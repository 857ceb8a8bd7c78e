"""The paper vgrp implements: light, so registering the plugin imports nothing heavy (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="VGRP-Bench: Visual Grid Reasoning Puzzle Benchmark for Large Vision-Language Models",
    arxiv="2503.23064",
    citation="""@article{ren2025vgrpbench,
  title   = {{VGRP-Bench}: Visual Grid Reasoning Puzzle Benchmark for Large Vision-Language Models},
  author  = {Ren, Yufan and Tertikas, Konstantinos and Maiti, Shalini and Han, Junlin and Zhang, Tong and
             S{\\"u}sstrunk, Sabine and Kokkinos, Filippos},
  journal = {arXiv preprint arXiv:2503.23064},
  year    = {2025},
  url     = {https://arxiv.org/abs/2503.23064}
}""",
)
