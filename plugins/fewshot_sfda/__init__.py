"""Few-shot fine-tuning for source-free domain adaptation (arXiv 2304.00792): the official k-shot split as a
transform, best-by-validation-loss model selection as a callback, the head-only stage of LP-FT as an adapter, the
LP-FT recipe and a built-in labelled target domain. See README.md."""

from trl_ext import Adapter, Callback, Dataset, Recipe, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import datasets / torch / transformers: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "few_shot_split": ".split",
        "few_shot_indices": ".split",
        "FewShotIndices": ".split",
        "BestByFewShotVal": ".callbacks",
        "make_best_val_callback": ".callbacks",
        "make_head_only_adapter": ".adapter",
        "head_parameter_names": ".adapter",
    },
)

_M = "trl_ext_plugins.fewshot_sfda"
SPLIT_OPTIONS = {
    "label_column": "The class column (default label).",
    "k": "Training rows per class (default 3; the paper uses 1 and 3).",
    "val_per_class": "Validation rows per class: the last of each class's shuffled pool indices (default 1).",
    "test_ratio": "Held-out test share of the target set, drawn first (default 0.2, official; 0 with a separate test "
    "set).",
    "seed": "Seed of both draws (default 0).",
}


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="few_shot_split",
            factory=f"{_M}.split:make_fewshot_transform",
            family="data",
            paper=PAPER,
            required_columns=lambda o: (o.get("label_column", "label"),),
            options={"part": "Which part each split becomes: train (default), validation or test.", **SPLIT_OPTIONS},
            description="The official k-shot split of a labelled target set: seeded 80/20 pool/test, then per class "
            "the first k of its shuffled pool rows (train) and the last one (validation); a class with fewer than "
            "k+1 pool rows is refused.",
            example="trl-ext transform few_shot_split --dataset_name builtin:fewshot_sentiment --k 3 --output k3.jsonl",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="fewshot_best_val",
            factory=f"{_M}.callbacks:make_best_val_callback",
            family="data",
            paper=PAPER,
            options={
                "dataset": "The labelled target set the transform split (default builtin:fewshot_sentiment).",
                "split": "Its split (default train).",
                **SPLIT_OPTIONS,
                "val_freq": "Validate every this many optimizer steps (default 10, official README).",
                "batch_size": "Scoring batch size (default 16).",
            },
            description="Token-mean completion loss on the few-shot validation rows every val_freq steps; the "
            "weights of the lowest (strict improvement) are kept in CPU memory and restored when training ends. "
            "Logs fewshot/val_loss, fewshot/best_step, fewshot/best_val_loss, fewshot/num_train, fewshot/num_val.",
            example="trl-ext train sft --dataset_name builtin:fewshot_sentiment --transforms few_shot_split "
            "--callbacks fewshot_best_val",
        )
    )


@hookimpl
def register_adapters(register):
    register(
        Adapter(
            name="fewshot_head_only",
            factory=f"{_M}.adapter:make_head_only_adapter",
            family="data",
            paper=PAPER,
            description="LP-FT's linear-probe stage: freezes everything but the output head (`score`, else the LM "
            "head; with tied embeddings that is the embedding matrix).",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="fewshot_sentiment",
            factory=f"{_M}.data:build",
            family="builtin",
            paper=PAPER,
            description="180 template movie-review sentences, 60 each positive / negative / neutral, as prompt -> "
            "label word with a `label` column: a target domain for few_shot_split.",
            columns={"sft": ("prompt", "completion", "label")},
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="fewshot_sfda",
            source=f"{_M}:recipes/fewshot_sfda.yaml",
            paper=PAPER,
            description="LP-FT on a k-shot split of a labelled target domain: head-only SFT (lr 1e-4, 400 steps), "
            "then full SFT from it (lr 1e-5, 1000 steps), each keeping its best-validation-loss weights.",
        )
    )


__all__ = ["PAPER", "SPLIT_OPTIONS"]
