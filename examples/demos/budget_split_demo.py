"""budget_split's small-scale demonstration (the card's): one annotation budget B on `builtin:budget_arith`, spent
at several SFT fractions f (f = 0: DPO only from the base model; f = 0.1; f = 1: SFT only), each run through the
budget_split recipe (SFT -> DPO from the SFT model, empty stages skipped) on SmolLM2-135M-Instruct, each final model
answering the same held-out problems greedily. Prints a Markdown table (accuracy, worked-step rate, wall and CPU
seconds per arm) and draws accuracy against f.

    OMP_NUM_THREADS=1 python examples/demos/budget_split_demo.py [--budget 400] [--fractions 0 0.1 1]
"""

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=400)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    parser.add_argument("--eval_samples", type=int, default=100)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--sft_learning_rate", default="2e-5")  # TRL's SFT default
    parser.add_argument("--dpo_learning_rate", default="5e-6")  # 5x TRL's default: ~50 steps at 1e-6 barely move
    parser.add_argument("--output_dir", default="outputs/budget_split-demo")
    parser.add_argument("--plot", default="plugins/budget_split/demo_budget_split.png")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from trl_ext.devtools.demo import markdown_table
    from trl_ext.evaluation.plots import plot_over_steps
    from trl_ext_plugins.budget_split import BudgetOptions, heldout_accuracy, run_budgeted_pipeline

    # No activation checkpointing (TRL's DPO turns it on): a 135M model fits, and it costs a second forward per step.
    common = {
        "per_device_train_batch_size": 8,
        "num_train_epochs": 1,
        "logging_steps": 1,
        "seed": 0,
        "gradient_checkpointing": False,
    }
    results = []
    start, cpu = time.time(), time.process_time()
    base = heldout_accuracy("smollm2-135m", num_samples=args.eval_samples, max_new_tokens=args.max_new_tokens)
    results.append(
        {
            "arm": "base (no training)",
            "f": None,
            "n_sft": 0,
            "n_pref": 0,
            **base,
            "wall_s": time.time() - start,
            "cpu_s": time.process_time() - cpu,
        }
    )
    print(json.dumps(results[-1]), flush=True)
    for f in args.fractions:
        options = BudgetOptions(budget=args.budget, sft_fraction=f, task_type="reasoning")
        plan = options.plan()
        start, cpu = time.time(), time.process_time()
        final = run_budgeted_pipeline(
            options,
            output_dir=str(Path(args.output_dir) / f"f={f:g}"),
            common=common,
            sft={"learning_rate": args.sft_learning_rate},
            dpo={"learning_rate": args.dpo_learning_rate},
        )
        figures = heldout_accuracy(final, num_samples=args.eval_samples, max_new_tokens=args.max_new_tokens)
        results.append(
            {
                "arm": f"f={f:g}",
                "f": f,
                "n_sft": plan.n_sft,
                "n_pref": plan.n_pref,
                **figures,
                "wall_s": time.time() - start,
                "cpu_s": time.process_time() - cpu,
                "warnings": list(plan.warnings),
            }
        )
        print(json.dumps(results[-1]), flush=True)

    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.output_dir) / "results.json").write_text(json.dumps(results, indent=2))
    rows = [
        [
            r["arm"],
            r["n_sft"],
            r["n_pref"],
            f"{r['budget_eval/accuracy']:.2f}",
            f"{r['budget_eval/step_rate']:.2f}",
            f"{r['wall_s']:.0f}",
            f"{r['cpu_s']:.0f}",
        ]
        for r in results
    ]
    print(
        f"\nB={args.budget:g}, smollm2-135m, {args.eval_samples} held-out problems, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', '-')}"
    )
    print(markdown_table(["arm", "N_sft", "N_pref", "accuracy", "step rate", "wall s", "CPU s"], rows))
    trained = [r for r in results if r["f"] is not None]
    series = {
        "held-out accuracy": [(r["f"], r["budget_eval/accuracy"]) for r in trained],
        "worked-step rate": [(r["f"], r["budget_eval/step_rate"]) for r in trained],
        "base accuracy": [(r["f"], results[0]["budget_eval/accuracy"]) for r in trained],
    }
    plot_over_steps(
        series,
        args.plot,
        title=f"budget_split: B={args.budget:g} annotations, smollm2-135m",
        ylabel="fraction of held-out problems",
        xlabel="SFT fraction f of the budget",
    )
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
