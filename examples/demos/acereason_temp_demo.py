"""acereason_temp's small-scale demonstration: the rollout-temperature selector on SmolLM2-135M-Instruct with
builtin:arith prompts (the RL prompt distribution), one torch thread. Prints H(T) on a grid that reaches below the
card's range (t_min 0.3, to show where the curve crosses the target) and the bisection's choice with the card's
defaults ([0.6, 1.2], 6 evaluations), and draws H(T) against the 0.3 target.

    python examples/demos/acereason_temp_demo.py [--n_prompts 32] [--max_new_tokens 64] [--plot out.png]
"""

import argparse
import json
import os
import time

import torch

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.acereason_temp import select_rl_temperature

WIDE_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n_prompts", type=int, default=32)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--plot", default="plugins/acereason_temp/demo_selector.png")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    prompts = load_dataset("builtin:arith", form="grpo")["train"]["prompt"][: args.n_prompts]
    common = dict(n_prompts=args.n_prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    results = {}
    runs = {"grid": dict(method="grid", grid=WIDE_GRID, t_min=0.3), "bisect": dict(method="bisect")}
    for method, options in runs.items():
        wall, cpu = time.time(), sum(os.times()[:2])
        chosen, table = select_rl_temperature(model, tokenizer, prompts, **options, **common)
        results[method] = {
            "temperature": chosen,
            "table": [(p.temperature, p.entropy, p.mean_len) for p in table],
            "wall_s": time.time() - wall,
            "cpu_s": sum(os.times()[:2]) - cpu,
        }
        r = results[method]
        print(f"\n{method}: T = {chosen:.4g}  ({r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} CPU-s)")
        rows = [(f"{t:.4g}", f"{h:.4f}", f"{n:.1f}", "<-" if t == chosen else "") for t, h, n in r["table"]]
        print(markdown_table(("T", "H(T)", "mean_len", "chosen"), rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        grid = results["grid"]["table"]
        ax.plot([t for t, _, _ in grid], [h for _, h, _ in grid], "o-", label="H(T), grid")
        bis = results["bisect"]["table"]
        ax.plot([t for t, _, _ in bis], [h for _, h, _ in bis], "x", ms=8, label="bisection evaluations")
        ax.axhline(0.3, color="gray", ls="--", label="target 0.3")
        ax.axvline(results["bisect"]["temperature"], color="C1", ls=":", label="selected T")
        ax.set_xlabel("rollout temperature T")
        ax.set_ylabel("entropy of softmax(z/T), nats/token")
        ax.set_title(f"{args.model} on builtin:arith ({args.n_prompts} prompts, {args.max_new_tokens} tokens)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
