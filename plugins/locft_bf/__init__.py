"""LocFT-BF (arXiv 2509.22072): model editing as breadth-first fine-tuning of one localized weight tensor, with the
edit-request transform, built-in counterfactual edits and the edit metrics. See README.md."""

from trl_ext import Callback, Dataset, Method, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import datasets / transformers / TRL: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LocFTConfig": ".config",
        "LocFTTrainer": ".trainer",
        "LocFTRules": ".trainer",
        "localize": ".trainer",
        "localized_names": ".trainer",
        "request_losses": ".trainer",
        "EditMetrics": ".evaluation",
        "edit_em": ".evaluation",
        "edit_completion": ".transforms",
        "edit_requests_to_prompt_completion": ".transforms",
    },
)

_M = "trl_ext_plugins.locft_bf"


@hookimpl
def register_methods(register):
    register(
        Method(
            name="locft_bf",
            trainer=f"{_M}.trainer:LocFTTrainer",
            config=f"{_M}.config:LocFTConfig",
            base="sft",
            family="parameter-efficient",
            paper=PAPER,
            default_dataset="builtin:locft_edits",
            description="Model editing as breadth-first fine-tuning: all edit requests for several epochs of "
            "shuffled batches, only one MLP down_proj trained; per-request mean loss, skip/early-stop at 1e-2, "
            "edit reliability / generalisation / locality at the end.",
            example="trl-ext train locft_bf --model_name_or_path smollm2-135m --dataset_name builtin:locft_edits "
            "--per_device_train_batch_size 50",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="locft_requests",
            factory=f"{_M}.transforms:make_locft_transform",
            family="parameter-efficient",
            paper=PAPER,
            needs_model=True,  # the tokenizer's EOS
            options={"append_eos": "Append the tokenizer's EOS to each completion (default true)."},
            description="Edit requests (prompt/src, target_new/alt) -> prompt/completion with completion = ' ' + "
            "target (space added only when missing) + EOS; the other columns are kept.",
            example="trl-ext transform locft_requests --model_name_or_path smollm2-135m --dataset_name "
            "builtin:locft_edits --dataset_config requests --output edits.jsonl",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="locft_edit_metrics",
            factory=f"{_M}.evaluation:make_edit_metrics",
            family="parameter-efficient",
            paper=PAPER,
            options={
                "dataset": "Edit requests: prompt/src, target_new/alt, optional rephrase_prompt, locality_prompt "
                "(default builtin:locft_edits).",
                "split": "Its split (default train: edits are scored on themselves).",
                "n": "The first n requests only (default all).",
                "max_new_tokens": "Greedy answer length (default 32, official).",
                "batch_size": "Generation batch size (default 16).",
            },
            example="trl-ext train sft --use_peft --dataset_name builtin:locft_edits --callbacks locft_edit_metrics",
            description="Logs edit/reliability_em, edit/generalization_em (SQuAD exact match of the greedy answer) "
            "and edit/locality (unchanged answers on unrelated prompts) when training ends.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="locft_edits",
            factory=f"{_M}.data:build",
            forms=("sft", "requests"),
            family="builtin",
            paper=PAPER,
            description="200 counterfactual edits 'The capital of <invented country> is' -> '<invented city>' with a "
            "paraphrase and a locality prompt on a real fact each. For locft_bf.",
            columns={
                "sft": ("prompt", "completion", "target_new", "rephrase_prompt", "locality_prompt", "locality_answer"),
                "requests": ("prompt", "target_new", "rephrase_prompt", "locality_prompt", "locality_answer"),
            },
        )
    )


__all__ = ["PAPER"]
