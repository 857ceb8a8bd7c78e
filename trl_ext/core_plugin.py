"""The core's own plugin, registered through the same entry-point group as every other: TRL's plain trainers
(so transforms, rewards, callbacks and adapters compose with them) and the built-in datasets. Trainers, configs and
dataset builders are named by import path, imported on first use: registering imports no TRL or torch."""

from __future__ import annotations

from trl_ext import Adapter, Dataset, Method, Transform, hookimpl

TRL_PAPER = None  # TRL's own trainers cite their papers through TRL's model card


@hookimpl
def register_methods(register):
    register(
        Method(
            name="sft",
            trainer="trl:SFTTrainer",
            config="trl:SFTConfig",
            base="sft",
            family="trl",
            description="TRL's SFTTrainer, unchanged.",
            example="trl-ext train sft --max_steps 20",
        )
    )
    register(
        Method(
            name="grpo",
            trainer="trl:GRPOTrainer",
            config="trl:GRPOConfig",
            base="grpo",
            family="trl",
            description="TRL's GRPOTrainer, unchanged; rewards from --rewards and --reward_funcs (as trl grpo).",
            example="trl-ext train grpo --dataset_name builtin:json_extract --rewards json_validity --max_steps 5",
        )
    )
    register(
        Method(
            name="rloo",
            trainer="trl:RLOOTrainer",
            config="trl:RLOOConfig",
            base="rloo",
            family="trl",
            description="TRL's RLOOTrainer, unchanged; rewards from --rewards and --reward_funcs (as trl rloo).",
            example="trl-ext train rloo --dataset_name builtin:json_extract --rewards json_validity --max_steps 5",
        )
    )
    register(
        Method(
            name="distillation",
            trainer="trl:DistillationTrainer",
            config="trl:DistillationConfig",
            base="distillation",
            family="trl",
            description="TRL's DistillationTrainer, unchanged: on-policy generalized JSD to a teacher "
            "(--teacher_model_name_or_path, same vocabulary; beta 1 = reverse KL, 0 = forward KL).",
            example="trl-ext train distillation --teacher_model_name_or_path ./teacher --max_completion_length 64 "
            "--max_steps 5",
        )
    )
    register(
        Method(
            name="dpo",
            trainer="trl:DPOTrainer",
            config="trl:DPOConfig",
            base="dpo",
            family="trl",
            description="TRL's DPOTrainer, unchanged.",
            default_dataset="builtin:arith_prefs",
            example="trl-ext train dpo --max_steps 10",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="arith",
            factory="trl_ext.data.arith:build",
            forms=("sft", "grpo", "dpo"),
            family="builtin",
            description="Arithmetic word problems with short worked reasoning and a final answer.",
            columns={
                "sft": ("prompt", "completion", "answer"),
                "grpo": ("prompt", "answer"),
                "dpo": ("prompt", "chosen", "rejected"),
            },
        )
    )
    register(
        Dataset(
            name="arith_prefs",
            factory="trl_ext.data.arith:build_preferences",
            forms=("dpo",),
            family="builtin",
            description="Preference pairs over arith: correct worked solution vs. a wrong one.",
            columns={"dpo": ("prompt", "chosen", "rejected")},
        )
    )
    register(
        Dataset(
            name="json_extract",
            factory="trl_ext.data.json_extract:build",
            forms=("grpo", "sft"),
            family="builtin",
            description="Text -> JSON object with a schema (for rlstruct).",
            columns={
                "grpo": ("prompt", "schema", "gold", "task"),
                "sft": ("prompt", "completion", "schema", "gold", "task"),
            },
        )
    )
    register(
        Dataset(
            name="arith_candidates",
            factory="trl_ext.data.candidates:build",
            forms=("grouped", "long"),
            family="builtin",
            description="Several candidate responses per arith question, varied in style and correctness (for grape).",
            columns={
                "grouped": ("prompt", "candidates", "candidate_sources", "answer"),
                "long": ("prompt_id", "prompt", "completion", "source", "answer"),
            },
        )
    )


def _filter_rows_columns(options: dict) -> tuple[str, ...]:
    return (str(options["column"]),) if "column" in options else ()


def _loglik_filter_columns(options: dict) -> tuple[str, ...]:
    return (options.get("prompt_column", "prompt"), options.get("completion_column", "completion"))


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="take_rows",
            factory="trl_ext.data.select:take_rows",
            family="data",
            options={
                "n": "Rows kept per split (required).",
                "shuffle": "Draw them at random instead of taking the first ones (default false).",
                "seed": "The draw's seed (default 0).",
            },
            description="Keeps the first n rows of each split (or n drawn with a seed): train on a subset, as a "
            "paper's or a demo's budget asks, in a run, a recipe stage or a compare arm.",
            example="trl-ext train sft --dataset_name builtin:arith --transforms take_rows:n=200:shuffle=true",
        )
    )
    register(
        Transform(
            name="filter_rows",
            factory="trl_ext.data.select:filter_rows",
            family="data",
            required_columns=_filter_rows_columns,
            options={
                "column": "The column read (required); a list-valued cell matches when any item does.",
                "keep": "Keep only the rows holding one of these values, e.g. keep=[add,carry] (or drop=).",
                "drop": "Drop the rows holding any of these values, e.g. drop=[subtract] (or keep=).",
            },
            description="Keeps (or drops) the rows whose column holds given values, compared as text: train "
            "without one skill or task, in a run, a recipe stage or a compare arm.",
            example="trl-ext train sft --dataset_name builtin:stat_skills --dataset_config sft "
            "--transforms filter_rows:column=skills:drop=[subtract]",
        )
    )
    register(
        Transform(
            name="completion_from",
            factory="trl_ext.data.select:completion_from",
            family="data",
            required_columns=lambda options: (str(options.get("column", "answer")),),
            options={
                "column": "The gold column the completion is built from (default answer).",
                "template": "The completion's text, {} standing for the value (default {}).",
                "pick": "A list-valued cell (k candidates): 'first' or 'random', one drawn per row seeded by (seed, "
                "row index) (default first).",
                "seed": "The seed of pick=random (default 0).",
                "conversational": "Make a text prompt a user message and the completion the assistant's (default "
                "false).",
            },
            description="Gives prompt-only rows a completion from their gold column (an assistant message for "
            "conversational prompts): an SFT arm on the same data as GRPO arms; from a list of candidates, the first "
            "or a random one (PiKa's control arm).",
            example="trl-ext train sft --dataset_name builtin:rif_tasks --dataset_config add "
            "--transforms completion_from:column=answer",
        )
    )
    register(
        Transform(
            name="corrupt_completions",
            factory="trl_ext.data.noise:corrupt_completions",
            family="data",
            required_columns=lambda options: (str(options.get("column", "completion")),),
            options={
                "share": "The share of rows whose completions rotate among themselves (default 0.2).",
                "seed": "The seed of the draw (default 0).",
                "column": "The column rotated (default completion).",
                "flag_column": "Also write a boolean column naming the corrupted rows (default none).",
            },
            description="Gives a seeded share of the rows another chosen row's completion: harmful label noise, "
            "so a curation comparison can see whether a selection method avoids it (Q-Tuning's demonstration).",
            example="trl-ext train qtuning --dataset_name builtin:arith "
            "--transforms take_rows:n=40,corrupt_completions:share=0.2",
        )
    )
    register(
        Transform(
            name="loglik_filter",
            factory="trl_ext.inference.curation:loglik_filter",
            family="data",
            needs_model=True,
            required_columns=_loglik_filter_columns,
            options={
                "prompt_column": "Prompt column (default prompt).",
                "completion_column": "Response column (default completion).",
                "keep_fraction": "Fraction of the rows kept after the threshold (default 1.0).",
                "min_mean_logprob": "Drop rows whose response's token-mean log-prob is below this (default none).",
                "keep": "'likely' keeps the highest mean log-probs first, 'unlikely' the lowest (default likely).",
                "batch_size": "Rows per scored batch; also the unit of resumption (default 16).",
                "max_length": "Truncate prompt+response to this many tokens, as SFT would (default none).",
                "source_column": "Column counted per value in the summary's kept_per_source (default none).",
                "curation_dir": "Where to keep scores, decisions and finished batches when not run by "
                "`trl-ext transform --output` (default: nothing kept).",
            },
            description="Scores each response's token-mean log-likelihood under the model (chunked, no full logits) "
            "and keeps the rows above a threshold / the most (or least) likely fraction; resumable, shardable "
            "with torchrun, per-row scores and a summary saved next to the output.",
            example="trl-ext transform loglik_filter --dataset_name builtin:arith --split train --keep_fraction 0.5 "
            "--output kept.jsonl",
        )
    )


@hookimpl
def register_adapters(register):
    register(
        Adapter(
            name="peft",
            factory="trl_ext.adapters.from_config:make_peft_adapter",
            family="parameter-efficient",
            description="Any peft method from a saved config (a folder with adapter_config.json), e.g. one that "
            "`trl-ext peft-zoo --output DIR` wrote at a matched trainable-parameter budget.",
            options={
                "config": "folder holding adapter_config.json (required)",
                "adapter_name": "peft adapter name (default); on a PeftModel, adds another",
            },
            example="trl-ext peft-zoo --model_name_or_path smollm2-135m --budget 0.005 --methods lora --output zoo && "
            "trl-ext train sft --model_name_or_path smollm2-135m --adapter peft:config=zoo/lora --max_steps 20",
        )
    )
