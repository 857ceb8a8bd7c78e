"""The paper ift implements: light, so registering the plugin imports no trainer (see trl_ext.plugin.lazy)."""

from trl_ext import Paper

PAPER = Paper(
    title="Intuitive Fine-Tuning: Towards Simplifying Alignment into a Single Process",
    arxiv="2405.11870",
    citation="""@inproceedings{hua-etal-2025-intuitive,
  title     = {Intuitive Fine-Tuning: Towards Simplifying Alignment into a Single Process},
  author    = {Hua, Ermo and Qi, Biqing and Zhang, Kaiyan and Tian, Kai and Lv, Xingtai and Ding, Ning and
               Zhou, Bowen},
  booktitle = {Proceedings of the 63rd Annual Meeting of the Association for Computational Linguistics
               (Volume 1: Long Papers)},
  pages     = {121--136},
  year      = {2025},
  address   = {Vienna, Austria},
  publisher = {Association for Computational Linguistics},
  doi       = {10.18653/v1/2025.acl-long.6},
  url       = {https://aclanthology.org/2025.acl-long.6/},
  eprint    = {2405.11870},
  archivePrefix = {arXiv}
}""",
)
