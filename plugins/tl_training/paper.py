"""The paper tl_training implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="TL-Training: A Task-Feature-Based Framework for Training Large Language Models in Tool Use",
    arxiv="2412.15495",
    citation="""@inproceedings{ye2025tltraining,
  title     = {{TL}-Training: A Task-Feature-Based Framework for Training Large Language Models in Tool Use},
  author    = {Ye, Junjie and Wu, Yilong and Li, Sixian and Yang, Yuming and Xi, Zhiheng and Gui, Tao and Zhang, Qi and
               Huang, Xuanjing and Wang, Peng and Shi, Zhongchao and Fan, Jianping and Du, Zhengyin},
  booktitle = {Findings of the Association for Computational Linguistics: EMNLP 2025},
  pages     = {239--258},
  year      = {2025},
  publisher = {Association for Computational Linguistics},
  url       = {https://aclanthology.org/2025.findings-emnlp.15/},
  eprint    = {2412.15495},
  archivePrefix = {arXiv}
}""",
)
