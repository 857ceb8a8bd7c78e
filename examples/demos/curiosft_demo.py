"""CurioSFT's small-scale demonstration: SmolLM2-135M-Instruct fine-tuned on builtin:arith (synthetic arithmetic
chains) with plain SFT and with CurioSFT (its defaults), same data, steps and learning rate; read on held-out
problems as the mean token entropy on the reference completions (TRL's `entropy` metric at eval) and pass@1 / pass@k
of k samples at temperature 1. The card expects CurioSFT to keep a higher entropy and a larger pass@k - pass@1 gap
at a similar pass@1.

The card's scale (2k problems, 2 epochs = 500 steps of 8) takes about an hour per run on 2 CPU cores; the defaults
here are 50 steps of 8 and 40 problems x 8 samples; the README's run (--max_steps 20 --eval_size 20) took 14 minutes on
one CPU thread. Raise --max_steps to get closer.

    python examples/demos/curiosft_demo.py [--max_steps 50] [--eval_size 40] [--k 8]
"""

import argparse
import json

import torch
from trl import SFTConfig, SFTTrainer

from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import train_arm
from trl_ext.models import load_model, load_tokenizer


def eval_entropy(model, tokenizer, dataset, output_dir: str) -> float:
    """TRL's `entropy` metric at eval: mean next-token entropy over the reference completion tokens."""
    args = SFTConfig(
        output_dir=output_dir, per_device_eval_batch_size=16, report_to="none", bf16=False, max_length=256
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, eval_dataset=dataset, processing_class=tokenizer
    )
    return trainer.evaluate()["eval_entropy"]


def pass_at(
    model, tokenizer, dataset, k: int, max_new_tokens: int, problems_per_batch: int = 8
) -> tuple[float, float]:
    """pass@1 (mean correctness of all samples, the unbiased estimate) and pass@k (a problem counts when any of its
    k samples is correct), with k samples per problem at temperature 1 from the full distribution."""
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    model.eval()
    torch.manual_seed(0)
    correct: list[list[bool]] = []
    try:
        for start in range(0, len(dataset), problems_per_batch):
            rows = dataset.select(range(start, min(start + problems_per_batch, len(dataset))))
            texts = [
                tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in rows["prompt"]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=1.0,
                    top_k=0,
                    top_p=1.0,
                    num_return_sequences=k,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                )
            answers = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, gold in enumerate(rows["answer"]):
                correct.append([is_correct(a, gold) for a in answers[i * k : (i + 1) * k]])
    finally:
        tokenizer.padding_side = side
    pass1 = sum(sum(c) for c in correct) / (k * len(correct))
    passk = sum(any(c) for c in correct) / len(correct)
    return pass1, passk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", default="5e-5")
    parser.add_argument("--eval_size", type=int, default=40)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--output_dir", default="outputs/curiosft-demo")
    args = parser.parse_args()

    tokenizer = load_tokenizer("smollm2-135m")
    test = load_dataset("builtin:arith", form="sft")["test"].select(range(args.eval_size))
    results = {}
    for method in ("sft", "curiosft"):
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
        pass1, passk = pass_at(tuned, tokenizer, test, args.k, args.max_new_tokens)
        results[method] = {
            "entropy": eval_entropy(tuned, tokenizer, test, f"{out}/eval"),
            "pass@1": pass1,
            f"pass@{args.k}": passk,
            "train_minutes": minutes,
        }
        print(method, json.dumps(results[method]), flush=True)

    print(
        f"\nbuiltin:arith, smollm2-135m, {args.max_steps} steps x {args.batch_size}, lr {args.learning_rate}; "
        f"{args.eval_size} held-out problems, {args.k} samples each at T=1"
    )
    print(f"| method | eval entropy | pass@1 | pass@{args.k} | pass@{args.k} - pass@1 |")
    print("| --- | --- | --- | --- | --- |")
    for method, r in results.items():
        gap = r[f"pass@{args.k}"] - r["pass@1"]
        print(f"| {method} | {r['entropy']:.3f} | {r['pass@1']:.1%} | {r[f'pass@{args.k}']:.1%} | {gap:+.1%} |")


if __name__ == "__main__":
    main()
