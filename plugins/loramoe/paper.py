"""The paper loramoe implements: light, so registering the plugin imports no torch (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="LoRAMoE: Alleviate World Knowledge Forgetting in Large Language Models via MoE-Style Plugin",
    arxiv="2312.09979",
    citation="""@inproceedings{dou2024loramoe,
  title         = {{LoRAMoE}: Alleviating World Knowledge Forgetting in Large Language Models via {MoE}-Style Plugin},
  author        = {Dou, Shihan and Zhou, Enyu and Liu, Yan and Gao, Songyang and Shen, Wei and Xiong, Limao and
                   Zhou, Yuhao and Wang, Xiao and Xi, Zhiheng and Fan, Xiaoran and Pu, Shiliang and Zhu, Jiang and
                   Zheng, Rui and Gui, Tao and Zhang, Qi and Huang, Xuanjing},
  booktitle     = {Proceedings of the 62nd Annual Meeting of the Association for Computational Linguistics},
  year          = {2024},
  eprint        = {2312.09979},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2312.09979}
}""",
)
