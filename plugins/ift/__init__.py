"""IFT: Intuitive Fine-Tuning, SFT on inputs mixed with the model's own greedy guesses, with relation propagation
(arXiv 2405.11870; official code TsinghuaC3I/Intuitive-Fine-Tuning)."""

from trl_ext import Dataset, Method, Paper, hookimpl

from . import data
from .config import IFTConfig
from .loss import mix_embeddings, propagation_weights, temporal_residual_ids
from .trainer import IFTTrainer

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
IFTTrainer._paper = {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}


@hookimpl
def register_methods(register):
    register(
        Method(
            name="ift",
            trainer=IFTTrainer,
            config=IFTConfig,
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="Response inputs mixed with the model's own greedy guesses ((1-λ)·gold + λ·guess, λ=0.2) and "
            "token losses weighted by γ-discounted future losses (γ=0.95); per-sequence mean.",
            # the no-grad forward that yields the greedy guesses; none while λ stays 0
            extra_forwards=lambda config, model: 1.0 if config.max_lambda > 0 else 0.0,
            example="trl-ext train ift --model_name_or_path smollm2-135m --dataset_name builtin:arith_chains "
            "--ift_lambda 0.2 --ift_gamma 0.95 --max_steps 50",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="arith_chains",
            factory=data.build,
            forms=("sft",),
            family="sft-loss",
            paper=PAPER,
            description="Arithmetic chains of 3-5 steps, one reasoning line per step and a final answer line (IFT's "
            "exposure-bias demo).",
            columns={"sft": ("prompt", "completion", "answer", "num_steps")},
        )
    )


__all__ = ["IFTConfig", "IFTTrainer", "PAPER", "mix_embeddings", "propagation_weights", "temporal_residual_ids"]
