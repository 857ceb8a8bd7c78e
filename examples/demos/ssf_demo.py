"""The SSF card's small-scale demonstration (shared/papers/ssf.md), scaled down for CPU: SmolLM2-135M-Instruct on
builtin:arith, SSF (scale and shift after q/k/v/o/gate/up/down and the two decoder norms: 380,160 trainable
parameters) against LoRA r=1 on all linears (305,280: the nearest LoRA budget), same steps, batch and data. Read:
token-mean NLL of the completions of held-out problems, for each arm unmerged and (SSF) merged into the base (the
merged model has the base architecture plus biases: no extra modules at inference). IA3 is not run (time).

    python examples/demos/ssf_demo.py [--train_size 192] [--eval_size 40]
    python examples/demos/ssf_demo.py --train_size 16 --eval_size 4   # smoke test
"""

import argparse
import json
import time
from pathlib import Path

import torch

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds

BASE = "smollm2-135m"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_size", type=int, default=192, help="training rows (one epoch)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_size", type=int, default=40)
    parser.add_argument("--ssf_lr", default="2e-3", help="the card: 1e-3..3e-3 for LLMs")
    parser.add_argument("--lora_lr", default="2e-3")
    parser.add_argument("--output_dir", default="outputs/demo-ssf")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from peft import PeftModel

    out = Path(args.output_dir)
    arith = load_dataset("builtin:arith", form="sft")
    train_file = out / "data" / "train.jsonl"
    train_file.parent.mkdir(parents=True, exist_ok=True)
    arith["train"].select(range(args.train_size)).to_json(str(train_file), lines=True)
    held_out = arith["test"].select(range(args.eval_size))
    steps = args.train_size // args.batch_size
    start_wall, start_cpu = time.time(), cpu_seconds()

    tokenizer = load_tokenizer(BASE)
    results = {"base model": {"held_out_nll": completion_nll(load_model(BASE), tokenizer, held_out), "params": 0}}
    common = dict(
        model_name_or_path=BASE,
        dataset_name=str(train_file),
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        gradient_checkpointing=False,
        logging_steps=max(1, steps // 4),
    )
    arms = (
        ("SSF (official init)", "ssf", ["--adapter", "ssf", "--learning_rate", args.ssf_lr]),
        (
            "LoRA r=1 all-linear",
            "lora",
            ["--use_peft", "true", "--lora_r", "1", "--lora_alpha", "2", "--lora_target_modules", "all-linear"]
            + ["--learning_rate", args.lora_lr],
        ),
    )
    for name, key, extra in arms:
        folder = out / key
        minutes = train_arm("sft", folder, extra, **common)
        tuned = PeftModel.from_pretrained(load_model(BASE), str(folder))
        params = sum(p.numel() for n, p in tuned.named_parameters() if "ssf_" in n or "lora_" in n)
        row = {"held_out_nll": completion_nll(tuned, tokenizer, held_out), "train_minutes": minutes, "params": params}
        merged = tuned.merge_and_unload()
        row["merged_nll"] = completion_nll(merged, tokenizer, held_out)
        row["merged_modules"] = sum(1 for _ in merged.modules())
        results[name] = row
        print(name, json.dumps(row), flush=True)
    results["base model"]["merged_modules"] = sum(1 for _ in load_model(BASE).modules())
    wall, cpu = time.time() - start_wall, cpu_seconds() - start_cpu
    (out / "results.json").write_text(json.dumps({"arms": results, "wall_s": wall, "cpu_s": cpu}, indent=2))

    print(
        f"\nSSF demo: {BASE}, {args.train_size} builtin:arith rows, batch {args.batch_size}, {steps} optimizer steps "
        f"(one epoch), lr SSF {args.ssf_lr} / LoRA {args.lora_lr}. NLL of the completions of {args.eval_size} "
        f"held-out problems. Wall {wall / 60:.1f} min, {cpu:.0f} CPU-s (one torch thread, shared machine).\n"
    )
    rows = [
        [
            name,
            f"{r['params']:,}",
            f"{r['held_out_nll']:.4f}",
            f"{r['merged_nll']:.4f}" if "merged_nll" in r else "-",
            r["merged_modules"],
            f"{r['train_minutes']:.2f}" if "train_minutes" in r else "-",
        ]
        for name, r in results.items()
    ]
    print(markdown_table(["arm", "trainable", "held-out NLL", "merged NLL", "modules (merged)", "train min"], rows))


if __name__ == "__main__":
    main()
