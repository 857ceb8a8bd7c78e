"""Prefix-RFT's small-scale demonstration (arXiv 2507.01679) on builtin:prefix_reverse with SmolLM2-135M-Instruct:
reverse a 6-digit string ("483920. Reverse the order of the digits. End with 'The answer is N.'" -> "The answer is
029384."), a task the model does not solve unaided, with a binary reward (`prefix_answer`).

Two arms from the same model, on the same rows, seed and steps (G = 8 rollouts per prompt, one prompt per step,
LoRA r=16 on all linear layers at lr 2e-4, loss_type dr_grpo and scale_rewards none in both):
1. plain GRPO (`trl-ext train grpo`);
2. Prefix-RFT (`trl-ext train prefix_rft`, m = 2 of 8 rollouts start from a demonstration prefix; the band's high end
   decays 0.95 -> 0.05 over the run).
Then greedy accuracy on held-out prompts for the base model and each arm, the logged reward, and Prefix-RFT's
prefix ratio as the schedule shortens it. One torch thread; wall time and CPU-seconds per arm.

    python examples/demos/prefix_rft_demo.py [--steps 30] [--eval_size 32]

The README's figures: --steps 10 --eval_size 16 (the shared machine allowed no more).
"""

import argparse
import ast
import contextlib
import io
import json
import os
import sys
import time

import torch

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
from trl_ext.inference import generate_completions
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds
from trl_ext_plugins.prefix_rft.rewards import prefix_answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning_rate", default="2e-4")
    parser.add_argument("--max_completion_length", type=int, default=12)
    parser.add_argument("--eval_size", type=int, default=32)
    parser.add_argument("--output_dir", default="outputs/prefix-rft-demo")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tokenizer = load_tokenizer(args.model)
    test = load_dataset("builtin:prefix_reverse", "grpo")["test"].select(range(args.eval_size))

    def accuracy(model) -> float:
        outs = generate_completions(
            model, tokenizer, test["prompt"], max_new_tokens=args.max_completion_length, progress=False
        )
        return sum(prefix_answer.score(o.text, answer=a) for o, a in zip(outs, test["answer"], strict=True)) / len(
            outs
        )

    common = dict(
        model_name_or_path=args.model,
        dataset_name="builtin:prefix_reverse",
        rewards="prefix_answer",
        num_generations=8,
        per_device_train_batch_size=8,
        max_completion_length=args.max_completion_length,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        loss_type="dr_grpo",
        scale_rewards="none",
        logging_steps=1,
        use_peft=True,
        lora_r=16,
        lora_alpha=32,
        lora_target_modules="all-linear",
    )
    results, logs = {}, {}
    start, cpu = time.time(), cpu_seconds()
    results["base"] = {"accuracy": accuracy(load_model(args.model)), "minutes": (time.time() - start) / 60}
    results["base"]["cpu_s"] = cpu_seconds() - cpu
    arms = {"grpo": ("grpo", {}), "prefix_rft": ("prefix_rft", {"num_prefixed_per_group": 2})}
    for name, (method, extra) in arms.items():
        out = f"{args.output_dir}/{name}"
        cpu = cpu_seconds()
        captured = _Tee()
        with contextlib.redirect_stdout(
            captured
        ):  # the trainer's per-step log lines (save_strategy no: no state file)
            minutes = train_arm(method, out, **common, **extra)
        train_cpu = cpu_seconds() - cpu
        logs[name] = captured.logs()
        results[name] = {"accuracy": accuracy(load_tuned(out, args.model)), "minutes": minutes, "cpu_s": train_cpu}

    def mean(name, key, part):
        values = [e[key] for e in logs[name] if key in e]
        half = len(values) // 2
        values = values[:half] if part == "first" else values[half:]
        return sum(values) / len(values) if values else float("nan")

    rows = [["base (no training)", f"{results['base']['accuracy']:.3f}", "-", "-", "-", "-"]]
    for name in arms:
        rows.append(
            [
                name,
                f"{results[name]['accuracy']:.3f}",
                f"{mean(name, 'reward', 'first'):.3f} -> {mean(name, 'reward', 'second'):.3f}",
                f"{mean(name, 'onpolicy/reward_mean', 'first'):.3f} -> {mean(name, 'onpolicy/reward_mean', 'second'):.3f}"
                if name == "prefix_rft"
                else "(all on-policy)",
                f"{results[name]['minutes']:.1f}",
                f"{results[name]['cpu_s']:.0f}",
            ]
        )
    header = ["arm", "held-out accuracy", "reward (1st half -> 2nd)", "on-policy reward", "train min", "train CPU-s"]
    print(markdown_table(header, rows))
    ratios = [
        (e["step"], e["prefix/band_high"], e["prefix/ratio_mean"])
        for e in logs["prefix_rft"]
        if "prefix/ratio_mean" in e
    ]
    print(
        "prefix_rft step / band high / ratio mean:",
        [(s, round(h, 2), round(r, 2)) for s, h, r in ratios[:: max(1, len(ratios) // 6)]],
    )
    print(json.dumps(results))


class _Tee(io.StringIO):
    """Keeps what is printed and passes it on; `logs()` parses the trainer's printed log dicts."""

    def write(self, text):
        sys.__stdout__.write(text)
        return super().write(text)

    def logs(self) -> list[dict]:
        found = []
        for line in self.getvalue().replace("\r", "\n").splitlines():
            start = line.find("{'loss'")
            if start >= 0:
                entry = ast.literal_eval(line[start:])
                found.append({k: float(v) for k, v in entry.items()})
        for step, entry in enumerate(found, 1):
            entry["step"] = step
        return found


if __name__ == "__main__":
    main()
