"""irac_sft's small-scale demonstration (the card's, on `builtin:irac_mcq`, no MBE data offline): SFT smollm2-135m
with LoRA on (a) the raw template explanations and (b) their IRAC version (the `template` teacher through the
`irac_distill` transform), at per_domain 20 and 80, every arm for the same number of steps, through `trl-ext train`
with the transforms irac_sample -> irac_distill -> irac_render (JSON, explanation first, options shuffled). Each model
and the untuned base answer the same held-out items (10 per domain) with the `mcq_eval` callback's evaluation:
eval/mcq_acc, eval/parse_rate and eval/letter_tv.

    python examples/demos/irac_sft_demo.py [--max_steps 30] [--per_domain 20 80] [--eval_per_domain 10]
"""

import argparse
from pathlib import Path

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.irac_sft import MCQEvalCallback, sample_per_domain

MODEL = "smollm2-135m"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per_domain", type=int, nargs="+", default=[20, 80])
    parser.add_argument("--max_steps", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", default="1e-3")
    parser.add_argument("--eval_per_domain", type=int, default=10)
    parser.add_argument("--max_new_tokens", type=int, default=160)
    parser.add_argument("--output_dir", default="outputs/irac-sft-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)

    test = sample_per_domain(load_dataset("builtin:irac_mcq")["test"], args.eval_per_domain, seed=0)
    evaluator = MCQEvalCallback(test, fmt="json", order="explanation_first", max_new_tokens=args.max_new_tokens,
                                batch_size=10)  # fmt: skip
    tokenizer = load_tokenizer(MODEL)
    results = {("base", "-"): evaluator.evaluate(load_model(MODEL), tokenizer)}
    print("base", results[("base", "-")], flush=True)
    minutes = {}
    for k in args.per_domain:
        for style in ("raw", "irac"):
            transforms = f"irac_sample:k={k},irac_distill:teacher=template,irac_render:use_irac={style == 'irac'}"
            folder = out / f"{style}-{k}"
            minutes[(style, k)] = train_arm(
                "sft", folder, dataset_name="builtin:irac_mcq", transforms=transforms, use_peft=True, lora_r=16,
                lora_alpha=32, lora_dropout=0.05, lora_target_modules="all-linear", learning_rate=args.learning_rate,
                lr_scheduler_type="cosine", warmup_steps=0.03, max_steps=args.max_steps,
                per_device_train_batch_size=args.batch_size, max_length=512, logging_steps=10,
            )  # fmt: skip
            results[(style, k)] = evaluator.evaluate(load_model(str(folder)), tokenizer)
            print(style, k, results[(style, k)], flush=True)

    domains = sorted({d for d in test["domain"]})
    print(f"\nSFT LoRA r=16 (all linear), lr {args.learning_rate}, {args.max_steps} steps x batch {args.batch_size} "
          f"per arm, {MODEL}; eval: {len(test)} held-out items, JSON, explanation first, greedy, "
          f"{args.max_new_tokens} new tokens")  # fmt: skip
    header = ["arm", "per_domain", "eval/mcq_acc", "eval/parse_rate", "eval/letter_tv",
              *[f"acc/{d}" for d in domains], "train min"]  # fmt: skip
    rows = [
        [style, k, f"{r['eval/mcq_acc']:.3f}", f"{r['eval/parse_rate']:.3f}", f"{r['eval/letter_tv']:.3f}",
         *[f"{r[f'eval/acc/{d}']:.2f}" for d in domains],
         f"{minutes[(style, k)]:.1f}" if (style, k) in minutes else "-"]
        for (style, k), r in results.items()
    ]  # fmt: skip
    print(markdown_table(header, rows))
    gold = sorted(test["answer"])
    print("gold letters:", {L: gold.count(L) for L in "ABCD"})


if __name__ == "__main__":
    main()
