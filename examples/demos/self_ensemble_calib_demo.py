"""self_ensemble_calib's small-scale demonstration (arXiv:2312.13772) on SmolLM2-135M-Instruct and
builtin:calib_sentiment (positive/negative reviews; the first 100 held-out rows by default):

1. the base model, 4-shot: the single prompt against self-ensembling over K=5 variants (`ic`: five demo sets, one
   template; `prompt`: five templates, one demo set), each combined by max, mean and vote (one set of forwards per
   variation: every strategy reads the same per-variant distributions);
2. a short full SFT on the zero-shot prompts of the train split, a checkpoint every `--every` steps;
3. each checkpoint measured as in 1 (`ic` only before the last), what `trl-ext evaluate --run_dir` does with the
   `self_ensemble_calib` callback, plus the other strategies.

Printed: a Markdown table for the README (accuracy, ECE with M=10, macro-F1, mean confidence, Brier) and a plot of
accuracy and ECE over the SFT steps, single prompt vs ic/max, saved under plugins/self_ensemble_calib/.

    python examples/demos/self_ensemble_calib_demo.py [--sft_steps 20] [--every 10] [--num_rows 100]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from trl_ext.data import load_dataset
    from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
    from trl_ext.evaluation.calibration import calibration_report
    from trl_ext.evaluation.plots import plot_over_steps
    from trl_ext.models import load_model, load_tokenizer
    from trl_ext_plugins.self_ensemble_calib import SelfEnsembleClassifier, ensemble

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sft_steps", type=int, default=20)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--num_rows", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--output_dir", default="outputs/self_ensemble_calib_demo")
    args = parser.parse_args()

    start, cpu_start = time.time(), time.process_time()
    out = Path(args.output_dir)
    data = load_dataset("builtin:calib_sentiment", "cls")
    pool, test = data["train"].to_list(), data["test"].to_list()[: args.num_rows]
    texts, y_true = [r["text"] for r in test], [r["label"] for r in test]

    def measure(model, tokenizer, variations) -> dict[str, dict[str, float]]:
        """{arm: report} for the single prompt and each (variation, strategy)."""
        reports = {}
        for variation in variations:
            clf = SelfEnsembleClassifier(model, tokenizer, ["positive", "negative"], demo_pool=pool,
                                         variation=variation, k=args.k)  # fmt: skip
            p = clf.variant_proba(texts)
            arms = [("single prompt", p[:, :1], "max")] if variation == "ic" else []
            arms += [(f"{variation} {s}", p, s) for s in ("max", "mean", "vote")]
            for name, probs, strategy in arms:
                pred, conf, dist = ensemble(probs, strategy)
                y_pred = [clf.classes[i] for i in pred.tolist()]
                reports[name] = calibration_report(y_true, y_pred, conf.tolist(), 10, dist.tolist(), clf.classes)
        return reports

    def record(name: str, arms: dict[str, dict[str, float]]) -> None:
        reports[name] = arms
        (out / "reports.json").write_text(json.dumps(reports, indent=1))  # kept as it goes: a long run can stop
        print(f"{name}: " + ", ".join(f"{a} acc {r['accuracy']:.3f} ece {r['ece']:.3f}" for a, r in arms.items()),
              flush=True)  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict[str, dict[str, float]]] = {}
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    record("base", measure(model, tokenizer, ("ic", "prompt")))
    del model
    sft_dir = out / "sft"
    sft_minutes = train_arm(
        "sft",
        sft_dir,
        model_name_or_path=args.model,
        dataset_name="builtin:calib_sentiment",
        max_steps=args.sft_steps,
        per_device_train_batch_size=8,
        learning_rate="2e-5",
        logging_steps=5,
        save_strategy="steps",  # the checkpoints are measured after training, as `trl-ext evaluate --run_dir` does
        save_steps=args.every,
        save_only_model=True,
    )
    steps = list(range(args.every, args.sft_steps + 1, args.every))
    for step in steps:
        model = load_tuned(sft_dir / f"checkpoint-{step}")
        last = step == steps[-1]
        record(f"SFT {step}", measure(model, tokenizer, ("ic", "prompt") if last else ("ic",)))

    keys = ("accuracy", "ece", "macro_f1", "conf_mean", "brier")
    rows = [
        [model_name, arm, *(f"{report[k]:.3f}" for k in keys)]
        for model_name, arms in reports.items()
        for arm, report in arms.items()
        if model_name in ("base", f"SFT {steps[-1]}")
    ]
    print(markdown_table(["model", "prediction", *keys], rows))

    at = {0: reports["base"], **{step: reports[f"SFT {step}"] for step in steps}}
    series = {
        f"{label}: {figure}": [(step, arms[arm][key]) for step, arms in at.items()]
        for label, arm in (("single prompt", "single prompt"), (f"ic/max (K={args.k})", "ic max"))
        for figure, key in (("accuracy", "accuracy"), ("ECE", "ece"))
    }
    png = plot_over_steps(
        series,
        ROOT / "plugins" / "self_ensemble_calib" / "demo_calibration.png",
        title=f"SmolLM2-135M, calib_sentiment (n={len(test)}, M=10), 4-shot, during SFT",
        ylabel="accuracy / ECE",
        xlabel="SFT step",
    )
    print(f"Plot: {png}")
    print(f"SFT: {sft_minutes:.1f} min; total {(time.time() - start) / 60:.1f} min wall, "
          f"{time.process_time() - cpu_start:.0f} CPU-s (this process; torch on one thread)")  # fmt: skip


if __name__ == "__main__":
    main()
