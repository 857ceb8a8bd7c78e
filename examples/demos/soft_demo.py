"""SoFT's small-scale demonstration: SmolLM2-135M-Instruct (30 layers) fine-tuned on builtin:arith (instruction
pairs generated in code) with plain SFT and with SoFT (default depths 10, 14, ..., 30), same data, steps and learning
rate; read per depth as held-out perplexity of the reference completions and as greedy exact match of sub-models 14,
22 and 30. The card expects SoFT's intermediate depths to have far lower perplexity than SFT's same depths, with the
full depth close to SFT.

The card's scale (2k pairs, 2 epochs) takes over an hour per run on 2 CPU cores; the defaults here are 40 steps of 8
each and 50 held-out problems; the README's run (--max_steps 20 --eval_size 30) took 13 minutes on one CPU thread. Raise
--max_steps to get closer.

    python examples/demos/soft_demo.py [--max_steps 40] [--eval_size 50] [--em_depths 14,22,30]
"""

import argparse
import json
import math

from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import train_arm
from trl_ext.evaluation import exact_match
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.soft import decoder_layers, default_depths, depth_nll, truncate_to_submodel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", default="5e-5")
    parser.add_argument("--eval_size", type=int, default=50)
    parser.add_argument("--em_depths", default="14,22,30")
    parser.add_argument("--output_dir", default="outputs/soft-demo")
    args = parser.parse_args()

    tokenizer = load_tokenizer("smollm2-135m")
    test = load_dataset("builtin:arith", form="sft")["test"].select(range(args.eval_size))
    em_depths = [int(d) for d in args.em_depths.split(",")]
    results = {}
    for method in ("sft", "soft"):
        out = f"{args.output_dir}/{method}"
        minutes = train_arm(
            method,
            out,
            model_name_or_path="smollm2-135m",
            dataset_name="builtin:arith",
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=256,
        )
        tuned = load_model(out)
        depths = sorted(set(default_depths(len(decoder_layers(tuned)))) | set(em_depths))
        nll = depth_nll(tuned, tokenizer, test["prompt"], test["completion"], depths)
        em = {n: exact_match(truncate_to_submodel(tuned, n), tokenizer, test, is_correct) for n in em_depths}
        results[method] = {
            "ppl": {n: math.exp(v) for n, v in nll.items()},
            "exact_match": em,
            "train_minutes": minutes,
        }
        print(method, json.dumps(results[method]), flush=True)

    print(
        f"\nbuiltin:arith, smollm2-135m, {args.max_steps} steps x {args.batch_size}, lr {args.learning_rate}; "
        f"{args.eval_size} held-out problems; sub-model n = first n layers + the final norm and head"
    )
    print("| depth | SFT perplexity | SoFT perplexity | SFT exact match | SoFT exact match |")
    print("| --- | --- | --- | --- | --- |")
    for n in sorted(results["sft"]["ppl"]):
        em = [f"{results[m]['exact_match'][n]:.1%}" if n in em_depths else "" for m in ("sft", "soft")]
        print(f"| {n} | {results['sft']['ppl'][n]:.3g} | {results['soft']['ppl'][n]:.3g} | {em[0]} | {em[1]} |")


if __name__ == "__main__":
    main()
