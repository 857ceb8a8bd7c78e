"""The OTR card's small-scale demonstration: SmolLM2-135M-Instruct fine-tuned on arithmetic problems with numbers
below 100 (builtin:arith_ood) with plain SFT and with One-Token Rollout (K=64, τ=1.2, β=-0.1), same data, steps and
learning rate. Read: exact match on held-out in-distribution problems and on out-of-distribution problems with
3-digit numbers, and the NLL of generic texts (the base model's own answers to generic prompts; a rise is
forgetting).

    python examples/demos/otr_demo.py [--max_steps 40] [--eval_size 40] [--generic 40]

The card's full scale is one epoch of the 2,000 training problems: --max_steps 250 (batch 8), --eval_size 200.
"""

import argparse
import json

from datasets import Dataset

from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import train_arm
from trl_ext.evaluation import completion_nll, exact_match
from trl_ext.inference import generate
from trl_ext.models import load_model, load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", default="5e-5")
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--eval_size", type=int, default=40)
    parser.add_argument("--generic", type=int, default=40, help="generic texts for the forgetting NLL")
    parser.add_argument("--output_dir", default="outputs/otr-demo")
    args = parser.parse_args()

    data = load_dataset("builtin:arith_ood")
    in_dist = data["test"].select(range(min(args.eval_size, len(data["test"]))))
    ood = data["ood"].select(range(min(args.eval_size, len(data["ood"]))))
    tokenizer = load_tokenizer(args.model)
    base = load_model(args.model)
    # Generic texts: the base model's own greedy answers to non-arithmetic prompts (offline, no corpus download)
    generic_data = load_dataset("builtin:json_extract", form="grpo")
    prompts = [
        p
        for split in ("test", "train")
        for p, t in zip(generic_data[split]["prompt"], generic_data[split]["task"], strict=True)
        if t != "gsm8k_json"
    ][: args.generic]
    answers = generate(base, tokenizer, prompts, max_new_tokens=48)
    generic = Dataset.from_list(
        [
            {"prompt": p, "completion": [{"role": "assistant", "content": a}]}
            for p, a in zip(prompts, answers, strict=True)
        ]
    )

    def read(model) -> dict:
        return {
            "in_dist": exact_match(model, tokenizer, in_dist, is_correct, max_new_tokens=48),
            "ood": exact_match(model, tokenizer, ood, is_correct, max_new_tokens=48),
            "generic_nll": completion_nll(model, tokenizer, generic),
        }

    results = {"base": read(base)}
    print("base", json.dumps(results["base"]), flush=True)
    runs = {
        "sft": [],
        "otr": ["--otr_num_samples", str(args.num_samples), "--otr_temperature", "1.2", "--otr_beta", "-0.1"],
    }
    for method, extra in runs.items():
        out = f"{args.output_dir}/{method}"
        minutes = train_arm(
            method,
            out,
            extra,
            model_name_or_path=args.model,
            dataset_name="builtin:arith_ood",
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=256,
        )
        results[method] = {**read(load_model(out)), "train_minutes": minutes}
        print(method, json.dumps(results[method]), flush=True)

    print(
        f"\nbuiltin:arith_ood, {args.model}, {args.max_steps} steps x {args.batch_size}, lr {args.learning_rate}; "
        f"exact match on {len(in_dist)} in-distribution (numbers < 100) and {len(ood)} OOD (3-digit) problems; "
        f"NLL of {len(generic)} generic texts"
    )
    print("| method | in-dist exact match | OOD exact match | generic NLL | train min |")
    print("| --- | --- | --- | --- | --- |")
    for method, r in results.items():
        minutes = f"{r['train_minutes']:.1f}" if "train_minutes" in r else "-"
        print(f"| {method} | {r['in_dist']:.1%} | {r['ood']:.1%} | {r['generic_nll']:.3f} | {minutes} |")


if __name__ == "__main__":
    main()
