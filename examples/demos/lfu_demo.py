"""The LfU card's small-scale demonstration (shared/papers/lfu.md): SmolLM2-135M-Instruct + LoRA r=8 on synthetic
arithmetic (builtin:arith), plain SFT vs LfU (alpha 0.1, lambda 5) on the same data, steps and learning rate (1e-4,
cosine, warmup 0.1). Read: (i) exact match on held-out problems under 5 paraphrased prompt templates (mean and
standard deviation across templates), (ii) the NLL increase on generic held-out texts (builtin:json_extract's
non-arithmetic tasks) over the base model. The card expects LfU to have a lower std across templates and a smaller
NLL increase at a similar mean accuracy.

Scaled down from the card (1k problems x 3 epochs): LfU costs ~3x an SFT step. The README's run (--train_size 80
--eval_size 15) took about 15 minutes on one CPU thread.

    python examples/demos/lfu_demo.py [--train_size 96] [--epochs 2] [--eval_size 30] [--generic_size 100]
    python examples/demos/lfu_demo.py --train_size 8 --epochs 1 --eval_size 2 --generic_size 4   # smoke test
"""

import argparse
import json
import statistics
from pathlib import Path

from trl_ext.data import arith, load_dataset
from trl_ext.devtools.demo import load_tuned, train_arm
from trl_ext.evaluation import completion_nll, exact_match
from trl_ext.models import load_model, load_tokenizer

BASE = "smollm2-135m"
# Five paraphrases of the training instruction (arith.INSTRUCTION), none of them seen in training.
TEMPLATES = [
    "Solve this step by step and finish with 'The answer is N.'",
    "Work it out briefly, then state 'The answer is N.'",
    "Show your calculation and conclude with: The answer is N.",
    "Explain the arithmetic in one line and end by writing 'The answer is N.'",
    "Compute the result. Write the steps, then 'The answer is N.'",
]


def paraphrased(eval_set, template: str):
    """The held-out problems with the training instruction replaced by `template`."""

    def swap(row):
        question = row["prompt"][0]["content"].removesuffix(" " + arith.INSTRUCTION)
        return {"prompt": [{"role": "user", "content": f"{question} {template}"}]}

    return eval_set.map(swap)


def evaluate(model, tokenizer, eval_sets, generic) -> dict:
    scores = [exact_match(model, tokenizer, ds, arith.is_correct, max_new_tokens=48) for ds in eval_sets]
    return {"exact_match": scores, "generic_nll": completion_nll(model, tokenizer, generic)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_size", type=int, default=96)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_size", type=int, default=30, help="held-out problems per template")
    parser.add_argument("--generic_size", type=int, default=100, help="generic held-out texts for the NLL drift")
    parser.add_argument("--base_accuracy", action="store_true", help="also measure the base model's exact match")
    parser.add_argument("--output_dir", default="outputs/demo-lfu")
    args = parser.parse_args()

    out = Path(args.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    arith_sets = load_dataset("builtin:arith", form="sft")
    train_file = out / "data" / "train.jsonl"
    arith_sets["train"].select(range(args.train_size)).to_json(str(train_file), lines=True)
    eval_set = arith_sets["test"].select(range(args.eval_size))
    eval_sets = [paraphrased(eval_set, t) for t in TEMPLATES]
    extraction = load_dataset("builtin:json_extract", form="sft")
    generic = [r for split in ("test", "train") for r in extraction[split] if r["task"] == "generic"]
    generic = extraction["test"].from_list(generic[: args.generic_size])

    tokenizer = load_tokenizer(BASE)
    base = load_model(BASE)
    base_nll = completion_nll(base, tokenizer, generic)
    results = {"base": {"exact_match": None, "generic_nll": base_nll}}
    if args.base_accuracy:
        results["base"] = evaluate(base, tokenizer, eval_sets, generic)
    del base

    common = dict(
        model_name_or_path=BASE,
        dataset_name=str(train_file),
        use_peft=True,
        lora_r=8,
        lora_alpha=16,
        lora_target_modules="all-linear",
        learning_rate="1e-4",
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        gradient_checkpointing=False,
        logging_steps=5,
    )
    for method, extra in (("sft", []), ("lfu", ["--lfu_alpha", "0.1", "--lfu_lambda", "5"])):
        minutes = train_arm(method, out / method, extra, **common)
        results[method] = {
            **evaluate(load_tuned(out / method, BASE), tokenizer, eval_sets, generic),
            "train_minutes": minutes,
        }
        print(method, json.dumps(results[method]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))

    print(
        f"\nLfU demo: {BASE} + LoRA r=8, builtin:arith {args.train_size} problems x {args.epochs} epochs, batch "
        f"{args.batch_size}, lr 1e-4 cosine. Exact match on {args.eval_size} held-out problems under "
        f"{len(TEMPLATES)} paraphrased templates; NLL on {len(generic)} generic texts (base: {base_nll:.3f}).\n"
    )
    print("| method | exact match, mean | exact match, std | per template | generic NLL | NLL increase | train min |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        scores = r["exact_match"]
        mean = f"{statistics.mean(scores):.1%}" if scores else "-"
        std = f"{statistics.pstdev(scores):.1%}" if scores else "-"
        per = " / ".join(f"{s:.0%}" for s in scores) if scores else "-"
        minutes = f"{r['train_minutes']:.1f}" if "train_minutes" in r else "-"
        print(
            f"| {name} | {mean} | {std} | {per} | {r['generic_nll']:.3f} | {r['generic_nll'] - base_nll:+.3f} | "
            f"{minutes} |"
        )


if __name__ == "__main__":
    main()
