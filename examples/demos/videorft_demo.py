"""VideoRFT's small-scale demonstration: GRPO on `builtin:vrft_shapes` (text prompts describing a synthetic picture)
with SmolLM2-135M-Instruct, G=4. Prints the train reward per component over the first and last quarter of the steps,
and held-out accuracy (R_acc) and format rate (R_fmt) of greedy answers before and after.

The semantic-consistency reward needs a pretrained CLIP/SigLIP, and none ships offline: without `--encoder` the run
uses the text-path rewards (accuracy, format, length bonus); with `--encoder /models/siglip` it adds
`vrft_semantic_reward` and reports `vrft/semantic_raw_mean` as well.

    python examples/demos/videorft_demo.py [--max_steps 20] [--encoder PATH]
"""

import argparse
import json
from pathlib import Path

from trl_ext import get
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.inference import generate
from trl_ext.models import load_model, load_tokenizer


def held_out(model_path: str, max_new_tokens: int) -> tuple[float, float]:
    """(mean R_acc, mean R_fmt) of greedy completions on the held-out split."""
    test = get("dataset", "vrft_shapes").build()["test"]
    model, tokenizer = load_model(model_path), load_tokenizer(model_path)
    outs = generate(model, tokenizer, list(test["prompt"]), max_new_tokens=max_new_tokens, progress=False)
    columns = {"solution": list(test["solution"]), "problem_type": list(test["problem_type"])}
    acc = get("reward", "vrft_accuracy_reward").build()(None, outs, **columns)
    fmt = get("reward", "vrft_format_reward").build()(None, outs, **columns)
    return sum(a or 0.0 for a in acc) / len(acc), sum(f or 0.0 for f in fmt) / len(fmt)


def mean(entries: list[dict], key: str) -> float:
    values = [e[key] for e in entries if key in e]
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=20)
    parser.add_argument("--max_completion_length", type=int, default=96)
    parser.add_argument("--learning_rate", default="1e-5")
    parser.add_argument(
        "--encoder", default=None, help="a local pretrained CLIP/SigLIP folder for the semantic reward"
    )
    parser.add_argument("--output_dir", default="outputs/videorft-demo")
    args = parser.parse_args()

    names = ["vrft_accuracy_reward", "vrft_format_reward", "vrft_length_bonus"]
    rewards = ",".join(names)
    if args.encoder:
        rewards += f",vrft_semantic_reward:encoder_name_or_path={args.encoder}"
        names.append("vrft_semantic_reward")
    base_acc, base_fmt = held_out("smollm2-135m", args.max_completion_length)
    out = Path(args.output_dir)
    minutes = train_arm(
        "grpo",
        out,
        model_name_or_path="smollm2-135m",
        dataset_name="builtin:vrft_shapes",
        rewards=rewards,
        loss_type="grpo",
        beta=0.04,
        scale_rewards="group",
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=args.max_completion_length,
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
    acc, fmt = held_out(str(out), args.max_completion_length)

    keys = [f"rewards/{name}/mean" for name in names] + ["completions/mean_length", "frac_reward_zero_std"]
    if args.encoder:
        keys.append("vrft/semantic_raw_mean")
    rows = [[key, f"{mean(first, key):.3f}", f"{mean(last, key):.3f}"] for key in keys]
    print(f"\nVideoRFT GRPO, smollm2-135m, G=4, batch 8, lr {args.learning_rate}, {args.max_steps} steps, "
          f"{minutes:.1f} min")  # fmt: skip
    print(markdown_table(["logged", f"first {k} steps", f"last {k} steps"], rows))
    print(f"\nheld-out R_acc {base_acc:.3f} -> {acc:.3f}, R_fmt {base_fmt:.3f} -> {fmt:.3f}")
    print("per step:", [round(sum(e.get(f"rewards/{n}/mean", 0.0) for n in names), 3) for e in logs])


if __name__ == "__main__":
    main()
