"""The fewshot_sfda card's small-scale demonstration (shared/papers/fewshot-sfda.md), scaled down for CPU:
SmolLM2-135M-Instruct as the "source model", adapted to builtin:fewshot_sentiment (template movie-review sentences,
prompt -> " positive" / " negative" / " neutral") with the paper's official k-shot split (`few_shot_split`: a seeded
20% test share first, then per class k training rows and 1 validation row from the pool). For each k, same split,
seed, batch and optimizer steps:
  (0) zero-shot source model (no training);
  (a) plain few-shot FT: full SFT on the k x 3 rows, lr 1e-5, constant, the LAST weights kept (no selection);
  (b) the paper's FT (opt-in: --arms ft_last ft_best lp_ft): the same run with `fewshot_best_val` (val loss on the
      3 validation rows every 10 steps, the lowest -- strict improvement -- restored at the end);
  (c) the paper's LP-FT: the registered recipe `fewshot_sfda` (plugins/fewshot_sfda/recipes/fewshot_sfda.yaml) with
      its step counts scaled down: stage 1 head-only (`fewshot_head_only`; tied embeddings, so the embedding matrix)
      at lr 1e-4 for lp_steps, then full SFT from it at lr 1e-5 for max_steps, both with best-val selection.
Metric (the card's): accuracy on the held-out test split (36 rows = 20% of 180), the label word with the highest
log-likelihood among the three (rank classification, `option_logprobs`), with a 95% interval (mean +- 1.96 s/sqrt n).
Also shown: the same accuracy on every row the few-shot run never saw (test + the unused pool, 180 - 4k rows; more
rows, narrower interval) and greedy exact match on the test split (the first generated word is the label).
The card expects the few-shot arms well above (0) (zero-shot here: 0.50 test, 0.42 unseen, 0.17 greedy at seed 0),
stably across seeds; (c) >= (a) is the paper's LP-FT / model-selection claim. Its entropy-minimisation SFDA baseline
is not implemented in the plugin (the paper argues against it) and is not an arm here.

Card scale: k = 1 and 3, 100 steps, lr 1e-5..1e-4, 3 seeds (the paper: batch 32, FT 1000 steps, LP 400 steps).
Default here: k = 1 and 3, 100 FT steps, 40 LP steps (the official 400:1000 ratio), seed 0, batch 32 (every step sees
all k x 3 rows), arms (0), (a), (c); about 13 CPU-minutes on one thread. More seeds: --seeds 0 1 2 (3x the time).

Why a script and not a `trl-ext compare` YAML: compare can now chain LP-FT's head-only and full stages in one arm
(an arm with `stages:`), but it measures raw rows of the dataset's own splits (no transforms), while the held-out
part here is few_shot_split's `test` share of builtin:fewshot_sentiment, which has only a `train` split and no `grpo`
form; and its metrics have no rank classification over label words (`option_logprobs`).

    OMP_NUM_THREADS=1 python examples/demos/fewshot_sfda_demo.py [--ks 1 3] [--max_steps 100] [--seeds 0]
    OMP_NUM_THREADS=1 python examples/demos/fewshot_sfda_demo.py --ks 3 --max_steps 2 --lp_steps 2 --val_freq 1 \
        --eval_rows 4 --output_dir /tmp/fewshot_sfda-smoke                      # smoke test
"""

import argparse
import importlib.resources
import json
import shutil
import statistics
import time
from pathlib import Path

import torch
import yaml

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import arm_argv, load_tuned, markdown_table, mean_with_interval
from trl_ext.inference.generation import generate
from trl_ext.inference.scoring import option_logprobs
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds
from trl_ext_plugins.fewshot_sfda.data import LABELS
from trl_ext_plugins.fewshot_sfda.split import few_shot_indices

BASE = "smollm2-135m"
DATASET = "builtin:fewshot_sentiment"
OPTIONS = [" " + label for label in LABELS]


def accuracy(model, tokenizer, rows: list[dict]) -> list[float]:
    """1.0 where the gold label word has the highest log-likelihood of the three, per row."""
    scores = option_logprobs(model, tokenizer, [r["prompt"] for r in rows], OPTIONS, batch_size=16)
    return [
        float(OPTIONS[max(range(len(OPTIONS)), key=s.__getitem__)] == r["completion"])
        for s, r in zip(scores, rows, strict=True)
    ]


def greedy_match(model, tokenizer, rows: list[dict]) -> list[float]:
    """1.0 where the first word of the greedy continuation is the gold label."""
    texts = generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=4, batch_size=16, progress=False)
    first = [(t.strip().split() or [""])[0].strip(".,;:!").lower() for t in texts]
    return [float(w == r["label"]) for w, r in zip(first, rows, strict=True)]


def measure(model, tokenizer, test: list[dict], unseen: list[dict]) -> dict:
    model.eval()
    return {"test_acc": accuracy(model, tokenizer, test), "unseen_acc": accuracy(model, tokenizer, unseen),
            "test_greedy": greedy_match(model, tokenizer, test)}  # fmt: skip


def lp_ft_recipe(path: Path, k: int, seed: int, cli: argparse.Namespace, common: dict) -> Path:
    """The registered recipe with this demo's k, seed, step counts, learning rates and CPU flags; written to `path`."""
    source = importlib.resources.files("trl_ext_plugins.fewshot_sfda") / "recipes" / "fewshot_sfda.yaml"
    recipe = yaml.safe_load(source.read_text())  # the `&split` anchor arrives expanded in each stage
    recipe.update(common, overwrite_output_dir=True)  # as every arm of trl_ext.devtools.demo
    for stage, steps, lr in zip(recipe["stages"], (cli.lp_steps, cli.max_steps), (cli.lp_lr, cli.ft_lr), strict=True):
        stage["max_steps"], stage["learning_rate"] = steps, lr
        for component in (*stage["transforms"], *stage["callbacks"]):
            component.update(k=k, seed=seed)
        for component in stage["callbacks"]:
            component["val_freq"] = cli.val_freq
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3], help="shots per class")
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=["ft_last", "ft_best", "lp_ft"],
        default=["ft_last", "lp_ft"],
        help="trained arms (the zero-shot model is always measured); ft_best adds ~1/3 to the time",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="split and training seeds")
    parser.add_argument("--max_steps", type=int, default=100, help="FT optimizer steps (every arm)")
    parser.add_argument("--lp_steps", type=int, default=40, help="LP-FT's head-only stage steps")
    parser.add_argument("--ft_lr", type=float, default=1e-5)
    parser.add_argument("--lp_lr", type=float, default=1e-4)
    parser.add_argument("--val_freq", type=int, default=10)
    parser.add_argument("--eval_rows", type=int, default=0, help="cap the evaluated rows (0: all; smoke tests)")
    parser.add_argument("--output_dir", default="outputs/demo-fewshot_sfda")
    parser.add_argument("--dry_run", action="store_true", help="check every arm's flags and data; train nothing")
    cli = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(cli.output_dir)
    start_wall, start_cpu = time.time(), cpu_seconds()

    rows_all = load_dataset(DATASET)["train"].to_list()
    labels = [r["label"] for r in rows_all]
    tokenizer = load_tokenizer(BASE)
    base = None if cli.dry_run else load_model(BASE, dtype=torch.float32)
    common = dict(model_name_or_path=BASE, dataset_name=DATASET, per_device_train_batch_size=32, weight_decay=0.0,
                  lr_scheduler_type="constant", warmup_steps=0, gradient_checkpointing=False, max_length=256,
                  logging_steps=10)  # fmt: skip
    results: dict[str, dict] = {}

    def held_out(k: int, seed: int) -> tuple[list[dict], list[dict]]:
        idx = few_shot_indices(labels, k, 1, 0.2, seed)
        test, unseen = [rows_all[i] for i in idx.test], [rows_all[i] for i in sorted(idx.test + idx.unused)]
        cap = cli.eval_rows or None
        return test[:cap], unseen[:cap]

    def record(name: str, values: dict, **extra) -> None:
        row = results.setdefault(name, {"test_acc": [], "unseen_acc": [], "test_greedy": [], "cpu_s": []})
        for key, v in values.items():
            row[key] += v
        for key, v in extra.items():
            row.setdefault(key, []).append(v)
        print(name, {k: round(statistics.fmean(v), 4) for k, v in values.items()}, extra, flush=True)

    def train(argv: list[str]) -> None:
        from trl_ext.cli import main as trl_ext

        code = trl_ext([*argv, *(["--dry_run"] if cli.dry_run else [])])
        if code:
            raise SystemExit(code)

    for seed in cli.seeds:
        for k in cli.ks:
            test, unseen = held_out(k, seed)
            if not cli.dry_run:  # the test rows depend on the seed only; the unseen rows on k too
                record(f"(0) zero-shot, k={k}", measure(base, tokenizer, test, unseen), cpu_s=0.0)
            split = f"k={k}:seed={seed}:test_ratio=0.2:val_per_class=1:label_column=label"
            ft = dict(common, learning_rate=cli.ft_lr, max_steps=cli.max_steps, seed=seed,
                      transforms=f"few_shot_split:part=train:{split}")  # fmt: skip
            best = f"fewshot_best_val:val_freq={cli.val_freq}:{split}"
            arms = (
                ("ft_last", f"(a) FT, last weights, k={k}", f"ft-last-k{k}-s{seed}", dict(ft)),
                ("ft_best", f"(b) FT + best-val, k={k}", f"ft-best-k{k}-s{seed}", dict(ft, callbacks=best)),
            )
            for name, key, flags in (arm[1:] for arm in arms if arm[0] in cli.arms):
                cpu0 = cpu_seconds()
                train(arm_argv("sft", out / key, **flags))
                if not cli.dry_run:
                    cpu = cpu_seconds() - cpu0
                    record(name, measure(load_tuned(out / key, BASE), tokenizer, test, unseen), cpu_s=cpu)
            if "lp_ft" not in cli.arms:
                continue
            folder = out / f"lp-ft-k{k}-s{seed}"
            if not cli.dry_run:  # a rerun retrains (a recipe would keep its finished stages)
                shutil.rmtree(folder, ignore_errors=True)
            recipe = lp_ft_recipe(
                folder / "recipe.yaml", k, seed, cli, dict(common, seed=seed, output_dir=str(folder))
            )
            cpu0 = cpu_seconds()
            train(["train", "--config", str(recipe)])
            if not cli.dry_run:
                cpu = cpu_seconds() - cpu0
                model = load_tuned(folder / "stage-2-sft", BASE)
                record(f"(c) LP-FT recipe, k={k}", measure(model, tokenizer, test, unseen), cpu_s=cpu)
    if cli.dry_run:
        print(
            f"fewshot_sfda demo (dry run): every arm checked, {len(cli.ks) * len(cli.seeds) * len(cli.arms)} to train."
        )
        return

    wall, cpu = time.time() - start_wall, cpu_seconds() - start_cpu
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"arms": results, "args": vars(cli), "wall_s": wall, "cpu_s": cpu},
                                                 indent=2))  # fmt: skip
    print(
        f"\nfewshot_sfda demo: {BASE} on {DATASET}, k in {cli.ks} shots per class (+1 validation row per class), "
        f"seeds {cli.seeds}; FT {cli.max_steps} steps at lr {cli.ft_lr}, LP {cli.lp_steps} steps at lr {cli.lp_lr}, "
        f"batch 32 (all k x 3 rows each step), constant lr. Accuracy = the gold label word ranked first of "
        f"{len(OPTIONS)}; mean [95% interval] over rows (pooled over seeds). Wall {wall / 60:.1f} min, {cpu:.0f} "
        f"CPU-s (one torch thread).\n"
    )
    table = [[name, mean_with_interval(r["test_acc"]), mean_with_interval(r["unseen_acc"]), mean_with_interval(r["test_greedy"]),
              f"{sum(r['cpu_s']):.0f}"] for name, r in results.items()]  # fmt: skip
    header = ["arm", "test accuracy", "accuracy, all unseen rows", "test greedy match", "train CPU-s"]
    print(markdown_table(header, table))


if __name__ == "__main__":
    main()
