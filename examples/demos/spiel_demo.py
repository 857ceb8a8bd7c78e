"""The SpIEL card's small-scale demonstration (shared/papers/spiel.md), scaled down for CPU: SmolLM2-135M-Instruct on
builtin:arith, LoRA r=8 on q/k/v/o/gate/up/down (2,442,240 trainable parameters) against SpIEL with the same number
of sparse deltas (num_tunable = the LoRA count), with drop/regrow and with its random support kept fixed
(reselection_steps=0). Same steps, batch, data and learning rate. Read: token-mean NLL of the completions of held-out
problems, train wall time and CPU-seconds of each arm. The schedule is shortened to fit the few steps (S=4, A=1:
regrowth at t = 1 with p = 1, then t = 5 and 9), not the card's S=20, A=5.

    python examples/demos/spiel_demo.py [--train_size 96] [--eval_size 32]
    python examples/demos/spiel_demo.py --train_size 16 --eval_size 4   # smoke test
"""

import argparse
import json
import time
from pathlib import Path

import torch

from trl_ext.cli.bench_rewards import cpu_seconds
from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.models import load_model, load_tokenizer

BASE = "smollm2-135m"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_R8 = 2_442_240  # 30 layers * 8 * sum of (in + out) over the 7 targets = 30 * 8 * 10,176


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_size", type=int, default=96, help="training rows (one epoch)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_size", type=int, default=32)
    parser.add_argument("--lr", default="1e-3", help="one learning rate for every arm")
    parser.add_argument("--reselection_steps", default="4")
    parser.add_argument("--selection_accumulation_steps", default="1")
    parser.add_argument("--output_dir", default="outputs/demo-spiel")
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
        logging_steps=1,
        learning_rate=args.lr,
        warmup_steps=0,
        lr_scheduler_type="linear",
    )
    schedule = ["--reselection_steps", args.reselection_steps]
    schedule += ["--selection_accumulation_steps", args.selection_accumulation_steps]
    arms = (
        ("LoRA r=8 (7 linears)", "sft", "lora",
         ["--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", *TARGETS]),
        ("SpIEL (drop/regrow)", "spiel", "spiel", ["--num_tunable", str(LORA_R8), *schedule]),
        ("SpIEL fixed random support", "spiel", "spiel-fixed", ["--num_tunable", str(LORA_R8),
                                                                "--reselection_steps", "0"]),
    )  # fmt: skip
    for name, method, key, extra in arms:
        folder = out / key
        cpu0 = cpu_seconds()
        minutes = train_arm(method, folder, extra, **common)
        tuned = PeftModel.from_pretrained(load_model(BASE), str(folder))
        params = sum(p.numel() for n, p in tuned.named_parameters() if "supertuning_" in n or "lora_" in n)
        row = {
            "held_out_nll": completion_nll(tuned, tokenizer, held_out),
            "train_minutes": minutes,
            "train_cpu_s": cpu_seconds() - cpu0,
            "params": params,
        }
        results[name] = row
        print(name, json.dumps(row), flush=True)
    wall, cpu = time.time() - start_wall, cpu_seconds() - start_cpu
    (out / "results.json").write_text(json.dumps({"arms": results, "wall_s": wall, "cpu_s": cpu}, indent=2))

    print(
        f"\nSpIEL demo: {BASE}, {args.train_size} builtin:arith rows, batch {args.batch_size}, {steps} optimizer "
        f"steps, lr {args.lr} (linear decay, no warm-up) for every arm. NLL of the completions of {args.eval_size} "
        f"held-out problems. Wall {wall / 60:.1f} min, {cpu:.0f} CPU-s (one torch thread, shared machine).\n"
    )
    rows = [
        [
            name,
            f"{r['params']:,}",
            f"{r['held_out_nll']:.4f}",
            f"{r['train_minutes']:.2f}" if "train_minutes" in r else "-",
            f"{r['train_cpu_s']:.0f}" if "train_cpu_s" in r else "-",
        ]
        for name, r in results.items()
    ]
    print(markdown_table(["arm", "trainable", "held-out NLL", "train min", "train CPU-s"], rows))


if __name__ == "__main__":
    main()
