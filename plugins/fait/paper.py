"""The paper fait implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="FAIT: Fault-Aware Fine-Tuning for Better Code Generation",
    arxiv="2503.16913",
    citation="""@article{fan2025fait,
  title         = {FAIT: Fault-Aware Fine-Tuning for Better Code Generation},
  author        = {Fan, Lishui and Liu, Zhongxin and Wang, Haoye and Bao, Lingfeng and Xia, Xin and Li, Shanping},
  journal       = {arXiv preprint arXiv:2503.16913},
  year          = {2025},
  eprint        = {2503.16913},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2503.16913}
}""",
)
