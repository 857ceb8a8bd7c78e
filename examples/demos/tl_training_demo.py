"""The TL-Training card's small-scale demonstration: SmolLM2-135M-Instruct fine-tuned on synthetic tool-use
trajectories (builtin:tool_calls: 5 tools with overlapping name prefixes, 10% of first calls failing with an error
output) with plain SFT on every assistant turn (`tl_mae_split:drop_errors=false`) and with MAE + PKT (failed turns
dropped, key tool-name tokens weighted), same steps, learning rate and schedule; optionally followed by GRPO with the
IRM reward. Read: tool-name accuracy and exact-call accuracy of the greedy first call on held-out requests.

    python examples/demos/tl_training_demo.py [--max_steps 40] [--eval_size 50] [--grpo_steps 0]

The card's full scale is one epoch over the 300 training trajectories (600 per-turn samples: --max_steps 75 with
batch 8), 100 held-out requests (--eval_size 100), then --grpo_steps 50 (GRPO costs 6-17 s a step on 2 CPU cores).
"""

import argparse
import json

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import train_arm
from trl_ext.inference import generate
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.tl_training import call_accuracy

# The same optimiser and schedule for both runs (PKT's own defaults are the paper's; SFT's are TRL's)
SCHEDULE = dict(lr_scheduler_type="cosine", warmup_steps=0.01, weight_decay=0.01, adam_beta2=0.95, max_length=512)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", default="1e-5")
    parser.add_argument("--eval_size", type=int, default=50)
    parser.add_argument("--grpo_steps", type=int, default=0, help="GRPO steps with the IRM reward after MAE+PKT")
    parser.add_argument("--output_dir", default="outputs/tl-training-demo")
    args = parser.parse_args()

    test = load_dataset("builtin:tool_calls", "grpo")["test"]
    test = test.select(range(min(args.eval_size, len(test))))
    tokenizer = load_tokenizer(args.model)

    def read(model) -> dict:
        answers = generate(model, tokenizer, test["prompt"], max_new_tokens=32)
        return call_accuracy([a.strip().split("\n")[0] for a in answers], test["gold_call"])

    results = {"base": read(load_model(args.model))}
    print("base", json.dumps(results["base"]), flush=True)
    common = dict(
        model_name_or_path=args.model,
        dataset_name="builtin:tool_calls",
        dataset_config="conversations",
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        **SCHEDULE,
    )
    runs = {
        "sft (all turns)": ["sft", "--transforms", "tl_mae_split:drop_errors=false"],
        "mae+pkt": ["pkt", "--transforms", "tl_mae_split", "--pkt_max_weight", "9"],
    }
    outputs = {}
    for name, (method, *extra) in runs.items():
        out = outputs[name] = f"{args.output_dir}/{method}"
        minutes = train_arm(method, out, extra, **common)
        results[name] = {**read(load_model(out)), "train_minutes": minutes}
        print(name, json.dumps(results[name]), flush=True)

    if args.grpo_steps > 0:
        out = f"{args.output_dir}/grpo"
        minutes = train_arm(
            "grpo",
            out,
            model_name_or_path=outputs["mae+pkt"],
            dataset_name="builtin:tool_calls",
            rewards="tool_call_reward",
            beta=0.3,
            num_generations=4,
            per_device_train_batch_size=4,
            max_completion_length=32,
            max_steps=args.grpo_steps,
            learning_rate="1e-6",
        )
        results["mae+pkt+grpo(irm)"] = {**read(load_model(out)), "train_minutes": minutes}
        print("grpo", json.dumps(results["mae+pkt+grpo(irm)"]), flush=True)

    print(
        f"\nbuiltin:tool_calls, {args.model}, {args.max_steps} steps x {args.batch_size}, lr {args.learning_rate}; "
        f"greedy first call on {len(test)} held-out requests"
    )
    print("| run | tool-name accuracy | exact-call accuracy | train min |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        minutes = f"{r['train_minutes']:.1f}" if "train_minutes" in r else "-"
        print(f"| {name} | {r['tool_name_accuracy']:.1%} | {r['exact_call_accuracy']:.1%} | {minutes} |")


if __name__ == "__main__":
    main()
