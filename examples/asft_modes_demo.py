"""The ASFT card's small-scale demonstration: SmolLM2-135M-Instruct fine-tuned on builtin:arith with the modes
sft / dft / asft (same data, steps and learning rate), read on held-out problems (exact match) and as drift from the
base model: mean KL(base || tuned) on generic prompts, teacher-forced on the base model's own greedy answers.

    python examples/asft_modes_demo.py [--max_steps 100] [--eval_size 100] [--drift_prompts 50]
"""

import argparse
import json

from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import train_arm
from trl_ext.evaluation import exact_match, kl_drift
from trl_ext.inference import generate
from trl_ext.models import load_model, load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="sft,dft,asft")
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_size", type=int, default=100)
    parser.add_argument("--drift_prompts", type=int, default=50)
    parser.add_argument("--output_dir", default="outputs/asft-modes")
    args = parser.parse_args()

    tokenizer = load_tokenizer("smollm2-135m")
    base = load_model("smollm2-135m")
    eval_set = load_dataset("builtin:arith", form="sft")["test"].select(range(args.eval_size))
    generic = [
        p
        for p, t in zip(
            *(load_dataset("builtin:json_extract", form="grpo")["test"][c] for c in ("prompt", "task")), strict=True
        )
        if t != "gsm8k_json"
    ]
    generic = generic[: args.drift_prompts]
    base_answers = generate(base, tokenizer, generic, max_new_tokens=48)
    results = {"base": {"exact_match": exact_match(base, tokenizer, eval_set, is_correct), "kl_drift": 0.0}}
    for mode in args.modes.split(","):
        out = f"{args.output_dir}/{mode}"
        minutes = train_arm(
            "asft",
            out,
            asft_loss=mode,
            dataset_name="builtin:arith",
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate="5e-5",
            max_length=256,
            logging_steps=20,
        )
        tuned = load_model(out)
        results[mode] = {
            "exact_match": exact_match(tuned, tokenizer, eval_set, is_correct),
            "kl_drift": kl_drift(base, tuned, tokenizer, generic, base_answers),
            "train_minutes": minutes,
        }
        print(mode, json.dumps(results[mode]), flush=True)
    print(
        f"\nbuiltin:arith, smollm2-135m, {args.max_steps} steps x {args.batch_size}, lr 5e-5; exact match on "
        f"{args.eval_size} held-out problems; KL(base || tuned) per token on {len(generic)} generic prompts"
    )
    print("| mode | exact match | KL drift |\n| --- | --- | --- |")
    for mode, r in results.items():
        print(f"| {mode} | {r['exact_match']:.1%} | {r['kl_drift']:.4f} |")


if __name__ == "__main__":
    main()
