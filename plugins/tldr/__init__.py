"""TLDR (arXiv:2505.07961): efficient reasoning for small models, by reinforcement and by intervention.

Adds the length-regularised GRPO reward `tldr_length_regularized_reward`, the `add_length_levels` transform that asks
each prompt for a short, medium or long answer, the `builtin:tldr_arith` dataset, and two logits processors for
evaluation and `trl-ext generate`: `think_stop_temperature` (temperature scaling of the end-of-think decision) and
`budget_forcing` (the s1 baseline). Training is TRL's GRPOTrainer (`trl-ext train grpo --rewards ...`).
"""

from trl_ext import Dataset, LogitsProcessor, Reward, Transform, hookimpl

from .paper import PAPER

__all__ = ["PAPER"]

_MODULE = "trl_ext_plugins.tldr"
_END_THINK = {
    "end_think": "The end-of-think marker, encoded by the model's tokenizer (default '</think>').",
    "end_think_token_id": "The marker's token id(s) instead of end_think.",
}


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="tldr_length_regularized_reward",
            factory=f"{_MODULE}.rewards:TLDRReward.from_options",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("answer", "length_level"),
            options={
                "lambda_short": "λ_short (default 0.5, ours).",
                "lambda_medium": "λ_medium (default 0.2, ours).",
                "lambda_long": "λ_long (default 0.05, ours).",
                "levels": "Level -> λ_ℓ as a mapping (YAML recipes, Python), for other level names.",
                "gate_on_correct": "Penalise the length of correct completions only (default true, ours).",
                "max_completion_length": "L_max: give the run's --max_completion_length (default 512, TRL's).",
                "eos_token_ids": "Ids that end a completion; a completion without one is truncated, so wrong "
                "(default none: a completion of L_max tokens counts as truncated).",
                "verifier": "correct(o): boxed (last \\boxed{} equals `answer`, default), answer_is, or module:function.",
                "tokenizer": "A tokenizer name or path to count L when no completion_ids are given (GRPO gives them).",
            },
            example="trl-ext train grpo --dataset_name builtin:tldr_arith --rewards "
            "tldr_length_regularized_reward:max_completion_length=64 --max_completion_length 64 --max_steps 5",
            description="TLDR: R = 1[correct] − λ_ℓ·(L/L_max)·1[correct] for the row's `length_level` ℓ, L in "
            "completion tokens; truncated completions are wrong. Logs tldr/length_<level>, tldr/accuracy_<level>, "
            "tldr/length_ratio_short_over_long.",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="add_length_levels",
            factory=f"{_MODULE}.transforms:add_length_levels",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("prompt",),
            options={
                "levels": "The levels drawn uniformly per row (default short,medium,long).",
                "seed": "Seed of the per-row draw (default 0).",
                "level_template": "The line appended to the prompt (default 'Reasoning budget: {level}.').",
                "level": "Give every row this level (e.g. to evaluate one level).",
            },
            example="trl-ext transform add_length_levels --dataset_name builtin:arith --dataset_config grpo "
            "--output levels.jsonl",
            description="Adds `length_level` (uniform over short/medium/long, seeded per row) and appends "
            "'Reasoning budget: {level}.' to each prompt (≤ 8 more tokens).",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="tldr_arith",
            factory=f"{_MODULE}.data:build",
            forms=("grpo", "sft"),
            family="builtin",
            paper=PAPER,
            description="260 arithmetic word problems (200 train / 60 test) asking for <think> reasoning and a "
            "\\boxed{} answer: grpo rows carry a length level in the prompt and `length_level`; sft rows (no level) "
            "a <think> trace of varying length, to SFT a starting model.",
            columns={"grpo": ("prompt", "answer", "length_level"), "sft": ("prompt", "completion", "answer")},
        )
    )


@hookimpl
def register_logits_processors(register):
    register(
        LogitsProcessor(
            name="think_stop_temperature",
            factory=f"{_MODULE}.decoding:think_stop_temperature",
            family="recipe",
            paper=PAPER,
            options={
                "tau_stop": "τ_stop > 0: below 1 boosts the end-of-think logit (stop earlier), above 1 suppresses it.",
                "mode": "stop (rescale the end-of-think logit only, default) or global (all logits / τ while "
                "thinking).",
                **_END_THINK,
            },
            example="trl-ext generate --model_name_or_path smollm2-135m --dataset_name builtin:tldr_arith "
            "--dataset_split test --logits_processors think_stop_temperature:tau_stop=0.5",
            description="TLDR's temperature scaling: while a row is thinking, logit_e / τ (logit_e >= 0) or "
            "logit_e · τ (< 0) for the end-of-think token e.",
        )
    )
    register(
        LogitsProcessor(
            name="budget_forcing",
            factory=f"{_MODULE}.decoding:budget_forcing",
            family="recipe",
            paper=PAPER,
            options={
                "budget": "B: thinking tokens before the end-of-think marker is forced (default 256).",
                **_END_THINK,
            },
            example="trl-ext generate --model_name_or_path smollm2-135m --dataset_name builtin:tldr_arith "
            "--dataset_split test --logits_processors budget_forcing:budget=32",
            description="s1's budget forcing (TLDR's baseline): force the end-of-think marker after B thinking tokens.",
        )
    )
