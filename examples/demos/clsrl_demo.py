"""CLS-RL's small-scale demonstration: CLS-RL (think) vs No-Thinking-CLS-RL on `builtin:cls_animals` (10-way text
classification, 4 shots per class), SmolLM2-135M-Instruct, G=4. Prints held-out accuracy before and after, the mean
completion length at the start and end of training, and each arm's wall time.

    python examples/demos/clsrl_demo.py [--max_steps 20]
"""

import argparse
import json
from pathlib import Path

from trl_ext import get
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.inference import generate
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.clsrl.scoring import accuracy, equality

ARMS = {
    "think": {
        "rewards": "cls_accuracy_reward,cls_format_reward",
        "max_completion_length": 48,
        "reward_keys": ("rewards/cls_accuracy_reward/mean", "rewards/cls_format_reward/mean"),
    },
    "no_think": {
        "rewards": "cls_equality_reward",
        "max_completion_length": 8,
        "reward_keys": ("rewards/cls_equality_reward/mean",),
    },
}


def held_out(model_path: str, mode: str, max_new_tokens: int) -> tuple[float, float]:
    """(answer accuracy, strict reward) of greedy completions on the 20 held-out rows: accuracy is r_acc (the answer
    span, else the completion, ignoring case) for both modes; strict is r_acc·r_fmt (think) or r_eq (no_think)."""
    test = get("transform", "build_cls_prompts").build(mode=mode)(get("dataset", "cls_animals").build()["test"])
    model, tokenizer = load_model(model_path), load_tokenizer(model_path)
    outs = generate(model, tokenizer, list(test["prompt"]), max_new_tokens=max_new_tokens, progress=False)
    fmt = get("reward", "cls_format_reward").build()(None, outs)
    acc = [accuracy(o, s) for o, s in zip(outs, test["solution"], strict=True)]
    if mode == "think":
        strict = [a * f for a, f in zip(acc, fmt, strict=True)]
    else:
        strict = [equality(o, s) for o, s in zip(outs, test["solution"], strict=True)]
    return sum(acc) / len(acc), sum(strict) / len(strict)


def mean(entries: list[dict], *keys: str) -> float:
    """The mean over log entries of the sum of `keys` (a total reward from its components)."""
    return sum(sum(e.get(key, 0.0) for key in keys) for e in entries) / len(entries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=20)
    parser.add_argument("--learning_rate", default="1e-5")
    parser.add_argument("--output_dir", default="outputs/clsrl-demo")
    args = parser.parse_args()

    rows = []
    for mode, arm in ARMS.items():
        base_acc, base_strict = held_out("smollm2-135m", mode, arm["max_completion_length"])
        out = Path(args.output_dir) / mode
        minutes = train_arm(
            "grpo",
            out,
            model_name_or_path="smollm2-135m",
            dataset_name="builtin:cls_animals",
            transforms=f"build_cls_prompts:mode={mode}",
            rewards=arm["rewards"],
            loss_type="grpo",
            beta=0.04,
            scale_rewards="group",
            num_generations=4,
            per_device_train_batch_size=8,
            max_completion_length=arm["max_completion_length"],
            learning_rate=args.learning_rate,
            max_steps=args.max_steps,
            logging_steps=1,
            save_strategy="steps",
            save_steps=args.max_steps,
        )
        state = json.loads((out / f"checkpoint-{args.max_steps}" / "trainer_state.json").read_text())
        logs = [e for e in state["log_history"] if "completions/mean_length" in e]
        k = max(1, len(logs) // 4)
        first, last = logs[:k], logs[-k:]

        keys = arm["reward_keys"]
        acc, strict = held_out(str(out), mode, arm["max_completion_length"])
        rows.append(
            [
                mode,
                f"{mean(first, *keys):.2f} -> {mean(last, *keys):.2f}",
                f"{mean(first, 'completions/mean_length'):.1f} -> {mean(last, 'completions/mean_length'):.1f}",
                f"{mean(logs, 'frac_reward_zero_std'):.2f}",
                f"{base_acc:.2f} -> {acc:.2f}",
                f"{base_strict:.2f} -> {strict:.2f}",
                f"{minutes:.1f}",
            ]
        )
    print(
        f"\nCLS-RL vs No-Thinking-CLS-RL, smollm2-135m, G=4, batch 8, lr {args.learning_rate}, {args.max_steps} steps"
    )
    header = [
        "mode",
        f"train reward (first/last {k} steps)",
        "completion tokens",
        "zero-std groups",
        "held-out accuracy (base -> trained)",
        "held-out strict reward",
        "train minutes",
    ]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
