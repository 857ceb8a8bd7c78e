"""sft_grpo_overlap's small-scale demonstration (the card's): SmolLM2-135M-Instruct on `builtin:formal_arith`, SFT
on 300 items for one epoch, then GRPO from that model with the GRPO prompts disjoint from the SFT ones (o = 0) or
all taken from them (o = 1), the same steps and settings. Prints compile and semantic pass@k on 32 held-out
problems for the base model, SFT only and both arms, the GRPO logs' zero-variance group fraction and reward std,
and each run's wall and CPU time; draws the zero-variance fraction over steps.

    OMP_NUM_THREADS=1 python examples/demos/sft_grpo_overlap_demo.py [--grpo_steps 20]
"""

import argparse
import json
import time
from pathlib import Path

import torch

from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.evaluation.plots import plot_over_steps, series_from_log
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds
from trl_ext_plugins.sft_grpo_overlap import build_formal_arith, evaluate_pass_at_k


def pass_at_k(path: str, prompts: list, n: int, max_new_tokens: int) -> dict[str, float]:
    model, tokenizer = load_model(path), load_tokenizer(path)
    return evaluate_pass_at_k(model, tokenizer, prompts, k_list=(1, n), n=n, max_new_tokens=max_new_tokens)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_sft", type=int, default=300)
    parser.add_argument("--n_grpo", type=int, default=80)
    parser.add_argument("--grpo_steps", type=int, default=20)
    parser.add_argument("--grpo_learning_rate", default="1e-5")
    parser.add_argument("--num_problems", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--output_dir", default="outputs/sft_grpo_overlap-demo")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.output_dir)
    split = f"n_sft={args.n_sft}:n_grpo={args.n_grpo}:seed=0"
    timing = {}

    start, cpu = time.time(), cpu_seconds()
    train_arm(
        "sft",
        out / "sft",
        model_name_or_path="smollm2-135m",
        dataset_name="builtin:formal_arith",
        transforms=f"overlap_sft_rows:{split}",
        num_train_epochs=1,
        per_device_train_batch_size=8,
        learning_rate="5e-5",
        max_length=128,
    )
    timing["sft"] = (time.time() - start, cpu_seconds() - cpu)
    logs = {}
    for overlap in ("0.0", "1.0"):
        arm = out / f"grpo_o{overlap}"
        start, cpu = time.time(), cpu_seconds()
        train_arm(
            "grpo",
            arm,
            model_name_or_path=str(out / "sft"),
            dataset_name="builtin:formal_arith",
            transforms=f"overlap_grpo_rows:{split}:overlap={overlap}",
            rewards="formal_verifier:w_semantic=1",
            num_generations=4,
            per_device_train_batch_size=8,
            max_completion_length=24,
            learning_rate=args.grpo_learning_rate,
            max_steps=args.grpo_steps,
            logging_steps=1,
            save_strategy="steps",
            save_steps=args.grpo_steps,
        )
        timing[f"grpo o={overlap}"] = (time.time() - start, cpu_seconds() - cpu)
        state = arm / f"checkpoint-{args.grpo_steps}" / "trainer_state.json"
        logs[overlap] = json.loads(state.read_text())["log_history"]

    prompts = list(build_formal_arith("grpo")["test"]["prompt"][: args.num_problems])
    models = {"base": "smollm2-135m", "SFT only": str(out / "sft")}
    models |= {f"SFT -> GRPO, o={o}": str(out / f"grpo_o{o}") for o in ("0.0", "1.0")}
    figures = {}
    for name, path in models.items():
        torch.manual_seed(0)
        figures[name] = pass_at_k(path, prompts, args.n, 24)
    n = args.n
    rows = []
    for name, f in figures.items():
        sft_sem = figures["SFT only"]["eval/semantic_pass@1"]
        gain = f"{f['eval/semantic_pass@1'] - sft_sem:+.3f}" if name.startswith("SFT ->") else "-"
        log = logs.get(name.rsplit("=", 1)[-1]) if name.startswith("SFT ->") else None

        def mean(key, log=log):
            values = [e[key] for e in log or [] if key in e]
            return f"{sum(values) / len(values):.3f}" if values else "-"

        rows.append(
            [
                name,
                f"{f['eval/compile_pass@1']:.3f}",
                f"{f['eval/semantic_pass@1']:.3f}",
                f"{f[f'eval/semantic_pass@{n}']:.3f}",
                f"{f['eval/compile_semantic_gap@1']:.3f}",
                gain,
                mean("grpo/zero_variance_group_fraction"),
                mean("reward_std"),
                mean("reward"),
            ]
        )
    header = ["model", "compile pass@1", "semantic pass@1", f"semantic pass@{n}", "gap@1", "semantic gain over SFT",
              "zero-variance groups", "reward std", "reward"]  # fmt: skip
    print(markdown_table(header, rows))
    print(markdown_table(["run", "wall s", "CPU s"], [[k, f"{w:.0f}", f"{c:.0f}"] for k, (w, c) in timing.items()]))
    series = {f"o={o}": series_from_log(log, "grpo/zero_variance_group_fraction") for o, log in logs.items()}
    path = plot_over_steps(
        series,
        out / "zero_variance_groups.png",
        title="GRPO groups with zero reward variance (formal_arith, SmolLM2-135M)",
        ylabel="fraction of groups",
    )
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
