"""Masked fine-tuning (arXiv:2510.09885): an AR model reads a masked copy of a document (or of an answer) in its
prompt and is trained to write the original. The offline transform `maskft` freezes one mask per copy; the method
`trl-ext train maskft` builds the pairs in its collator and re-samples the masks every epoch. QA evaluation callback
and built-in fictitious biographies. See README.md."""

from trl_ext import Callback, Dataset, Method, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import datasets / transformers / TRL: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MaskFTConfig": ".config",
        "MaskFTSFTConfig": ".config",
        "MaskFTTrainer": ".trainer",
        "MaskedReconstructionCollator": ".collator",
        "EpochToCollator": ".collator",
        "mask_ft_transform": ".transform",
        "mask_text": ".masking",
        "collapse_mask_runs": ".masking",
        "QAAccuracyCallback": ".evaluation",
        "qa_accuracy": ".evaluation",
        "answer_match": ".evaluation",
    },
)

_M = "trl_ext_plugins.maskft"
OPTIONS = {
    "mode": "knowledge (a `text` column -> masked copy in the prompt, the text as completion) or sft "
    "(prompt/completion: the answer's masked copy appended to the prompt) (default knowledge).",
    "unit": "Masking unit: word (whitespace-split) or token (the model's tokenizer) (default word).",
    "t_min": "Lower bound of the per-example mask ratio t ~ U(t_min, t_max) (default 0.0).",
    "t_max": "Upper bound of t (default 1.0).",
    "mask_str": "The mask string, plain text (default <mask>).",
    "collapse_runs": "Merge runs of consecutive masks into one (default false).",
    "p_plain": "SFT mode: probability of emitting the plain (q, a) pair (default 0.0; 0.5 when eval prompts carry "
    "no hint).",
    "template": "Knowledge-mode prompt with {masked} (and {mask}) placeholders (ours: the paper's is unpublished).",
    "sft_template": "SFT-mode hint appended to the prompt, with {masked} (ours).",
    "seed": "Seed of the masks (row i, copy k: a stream of its own) (default 0).",
    "conversational": "Knowledge mode: a user turn and an assistant turn (chat template) (default true, ours).",
    "text_column": "Knowledge-mode document column (default text).",
    "n_copies": "Masked copies per row, each with its own mask (default 1).",
}


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="maskft",
            factory=f"{_M}.transform:make_maskft_transform",
            family="data",
            paper=PAPER,
            needs_model=True,  # the tokenizer, for unit=token only
            required_columns=lambda o: (
                (o.get("text_column", "text"),)
                if o.get("mode", "knowledge") == "knowledge"
                else ("prompt", "completion")
            ),
            options=OPTIONS,
            description="Masked copy -> original: each row becomes n_copies prompt/completion pairs whose prompt "
            "holds the text with a random share t ~ U(t_min, t_max) of its words masked; frozen masks (the "
            "`maskft` method re-samples them every epoch).",
            example="trl-ext transform maskft --dataset_name builtin:maskft_bios --n_copies 2 --output masked.jsonl",
        )
    )


@hookimpl
def register_methods(register):
    register(
        Method(
            name="maskft",
            trainer=f"{_M}.trainer:MaskFTTrainer",
            config=f"{_M}.config:MaskFTSFTConfig",
            base="sft",
            family="data",
            paper=PAPER,
            default_dataset="builtin:maskft_bios",
            required_columns=lambda c: (
                (c.maskft_text_column,)
                if getattr(c, "maskft_mode", "knowledge") == "knowledge"
                else ("prompt", "completion")
            ),
            description="SFT on masked-copy -> original pairs built by the collator from raw rows, masks re-sampled "
            "every epoch as a masked diffusion LM would; SFTTrainer's completion loss.",
            example="trl-ext train maskft --model_name_or_path smollm2-135m --dataset_name builtin:maskft_bios "
            "--num_train_epochs 10 --callbacks maskft_qa_eval",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="maskft_qa_eval",
            factory=f"{_M}.evaluation:make_qa_callback",
            family="data",
            paper=PAPER,
            options={
                "dataset": "A dataset with a `qa` form of question/answer/direction rows (default "
                "builtin:maskft_bios).",
                "split": "Its split (default test).",
                "n": "Evaluate the first n QA rows only (default all).",
                "max_new_tokens": "Answer budget (default 24).",
                "conversational": "Ask as a user turn (chat template) (default true).",
            },
            description="Logs eval/qa_acc_forward and eval/qa_acc_backward (greedy answers, normalised answer "
            "match) at each evaluation and at the end of training.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="maskft_bios",
            factory=f"{_M}.data:build",
            forms=("knowledge", "qa"),
            family="builtin",
            paper=PAPER,
            description="200 fictitious one-sentence biographies (name, invented city, job) and held-out forward / "
            "backward QA. For maskft.",
            columns={"knowledge": ("text", "name"), "qa": ("question", "answer", "direction", "name")},
        )
    )


__all__ = ["PAPER", "OPTIONS"]
