"""PiKa: expert-level instructions with k scored candidate responses -> the best response for SFT and best/worst
pairs for DPO, keeping the hardest instructions. A data transform on the curation runner; see README.md."""

from __future__ import annotations

from trl_ext import Dataset, Paper, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import datasets and torch: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "decide": ".select",
        "duplicate_of": ".select",
        "hardest": ".select",
        "load_pika": ".loader",
        "make_pika_transform": ".select",
        "normalize_instruction": ".select",
        "pika_build": ".select",
        "pika_summary": ".select",
        "PikaFormatError": ".loader",
        "PikaStandinReward": ".reward",
        "select_responses": ".select",
    },
)

PAPER = Paper(
    title="PiKa: Expert-Level Synthetic Datasets for Post-Training Alignment from Scratch",
    arxiv="2510.06670",
    citation="""@article{pika2025,
  title   = {PiKa: Expert-Level Synthetic Datasets for Post-Training Alignment from Scratch},
  journal = {arXiv preprint arXiv:2510.06670},
  year    = {2025},
  url     = {https://arxiv.org/abs/2510.06670}
}""",
)

OPTIONS = {
    "form": "'sft' (prompt, completion = the best response) or 'dpo' (prompt, chosen = best, rejected = worst) "
    "(default sft).",
    "n_keep": "Keep at most this many instructions (the paper: 30000; default: all).",
    "keep_hardest": "With n_keep, keep the instructions with the lowest mean reward (default true); else the first.",
    "min_best_score": "Drop an instruction whose best reward is below this (ours; default off).",
    "min_margin": "form=dpo: drop a pair whose reward margin best - worst is below this (ours; default 0).",
    "dedup": "Drop instructions whose lower-cased, punctuation-free text repeats an earlier one (default true).",
    "rewards_column": "A column of precomputed reward-model scores (one list per row, aligned with the responses); "
    "default: score with the model.",
    "length_penalty": "Stand-in reward = mean token log-prob - length_penalty x response tokens (ours; default 0).",
    "conversational": "Score and emit rows with the chat template (user/assistant messages) (default true).",
    "prompt_column": "Instruction column (default prompt).",
    "responses_column": "Candidate responses column, a list of strings per row (default responses).",
    "batch_size": "Instructions per scored batch; also the unit of resumption (default 8).",
    "max_length": "Token limit of prompt + response when scoring, as SFT's max_length (default 1024).",
    "source_column": "Column counted per value in the summary (default domain).",
    "curation_dir": "Where to keep scores, decisions and finished batches outside `trl-ext transform --output`.",
}

__all__ = [
    "OPTIONS",
    "PAPER",
    "PikaFormatError",
    "PikaStandinReward",
    "decide",
    "duplicate_of",
    "hardest",
    "load_pika",
    "make_pika_transform",
    "normalize_instruction",
    "pika_build",
    "pika_summary",
    "select_responses",
]


def pika_columns(options: dict) -> tuple[str, ...]:
    cols = (options.get("prompt_column", "prompt"), options.get("responses_column", "responses"))
    return cols + ((options["rewards_column"],) if options.get("rewards_column") else ())


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="pika",
            family="data",
            needs_model=True,
            paper=PAPER,
            description="Scores k candidate responses per expert instruction (stand-in RM: mean token log-prob under "
            "the model, or a rewards column), drops duplicates and weak instructions, keeps the n_keep hardest, and "
            "emits the best response (SFT) or best/worst pairs (DPO); resumable, shardable, scores saved.",
            required_columns=pika_columns,
            options=OPTIONS,
            example="trl-ext transform pika --dataset_name builtin:pika_expert --split train --n_keep 20 "
            "--output pika_sft.jsonl",
            factory="trl_ext_plugins.pika.select:make_pika_transform",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="pika_rm",
            family="data",
            paper=PAPER,
            factory="trl_ext_plugins.pika.reward:PikaStandinReward.from_options",
            options={
                "model_name_or_path": "The frozen scoring model (default: the built-in smollm2-135m).",
                "length_penalty": OPTIONS["length_penalty"],
                "conversational": "Render a text prompt as a user message and the response as the assistant's "
                "(default true, as the transform).",
                "dtype": "The scoring model's dtype (default float32).",
                "batch_size": "Responses per scoring batch (default 16).",
                "max_length": "Token limit of prompt + response (default 1024).",
            },
            example="trl-ext compare sft pika_sft --dataset_name builtin:pika_expert --dataset_config sft "
            "--eval reward:pika_rm:length_penalty=0.002",
            description="The pika transform's stand-in reward model as a reward: a response's mean token log-prob "
            "under a frozen model minus length_penalty x its tokens (chunked scoring). Judges arms' answers the way "
            "the transform judged candidates (the card's win-rate). Logs pika/response_tokens.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="pika_expert",
            factory="trl_ext_plugins.pika.data:build",
            forms=("candidates", "sft", "personas"),
            family="builtin",
            paper=PAPER,
            description="30 expert instructions from personas in 6 domains (24 train + 2 near-duplicates, 6 held "
            "out), each with 4 candidates (expert, generic, terse, off-topic) and a difficulty 1-3. For pika.",
            columns={
                "candidates": ("prompt", "responses", "domain", "persona", "difficulty"),
                "sft": ("prompt", "completion", "domain"),
                "personas": ("persona", "domain"),
            },
        )
    )
