"""The LoRAMoE card's small-scale demonstration (shared/papers/loramoe.md), scaled down for CPU: SmolLM2-135M-Instruct
on builtin:loramoe_mix (capital-city QA, task_type 1, mixed 1:6 with format rewrites, task_type 0), LoRAMoE (E=6, r=4,
beta = delta = 0.1: 5,045,760 trainable parameters) against LoRA r=26 on gate/up/down (4,942,080: the nearest LoRA
budget), same steps, batch, data and learning rate. Read: greedy exact-answer accuracy on the held-out knowledge
questions (countries never trained on: the forgetting proxy) and, for LoRAMoE, the router's group-1 share per task
type at the last logged step.

    python examples/demos/loramoe_demo.py [--train_size 320] [--lr 1e-3]
    python examples/demos/loramoe_demo.py --train_size 16 --eval_size 4   # smoke test
"""

import argparse
import json
import time
from pathlib import Path

import torch

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds

BASE = "smollm2-135m"


@torch.no_grad()
def knowledge_accuracy(model, tokenizer, rows, batch_size: int = 20) -> float:
    """Share of questions whose greedy answer (24 new tokens) contains the gold capital."""
    model.eval()
    tokenizer.padding_side = "left"
    hits = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        hits += sum(r["answer"].lower() in t.lower() for r, t in zip(chunk, texts, strict=True))
    return hits / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_size", type=int, default=320, help="training rows (one epoch)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_size", type=int, default=60, help="held-out knowledge questions")
    parser.add_argument("--lr", default="1e-3", help="both arms (the official 2e-4 barely moves 40 steps)")
    parser.add_argument("--output_dir", default="outputs/demo-loramoe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from peft import PeftModel

    import trl_ext  # noqa: F401  (the loramoe tuner for PeftModel.from_pretrained)

    out = Path(args.output_dir)
    mix = load_dataset("builtin:loramoe_mix", form="sft")
    train_file = out / "data" / "train.jsonl"
    train_file.parent.mkdir(parents=True, exist_ok=True)
    mix["train"].select(range(args.train_size)).to_json(str(train_file), lines=True)
    held_out = [r for r in mix["test"] if r["task_type"] == 1][: args.eval_size]
    steps = args.train_size // args.batch_size
    start_wall, start_cpu = time.time(), cpu_seconds()

    tokenizer = load_tokenizer(BASE)
    results = {"base model": {"knowledge_acc": knowledge_accuracy(load_model(BASE), tokenizer, held_out), "params": 0}}
    print("base", json.dumps(results["base model"]), flush=True)
    common = dict(
        model_name_or_path=BASE,
        dataset_name=str(train_file),
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        gradient_checkpointing=False,
        logging_steps=max(1, steps // 4),
        learning_rate=args.lr,
        save_strategy="steps",
        save_steps=steps,
    )
    arms = (
        ("LoRAMoE E=6 r=4", "loramoe", "loramoe", []),
        (
            "LoRA r=26 gate/up/down",
            "sft",
            "lora",
            ["--use_peft", "true", "--lora_r", "26", "--lora_alpha", "208", "--lora_dropout", "0.05"]
            + ["--lora_target_modules", "gate_proj", "up_proj", "down_proj"],
        ),
    )
    for name, method, key, extra in arms:
        folder = out / key
        minutes = train_arm(method, folder, extra, **common)
        tuned = PeftModel.from_pretrained(load_model(BASE), str(folder))
        params = sum(p.numel() for n, p in tuned.named_parameters() if "loramoe_" in n or "lora_" in n)
        row = {"knowledge_acc": knowledge_accuracy(tuned, tokenizer, held_out), "train_minutes": minutes}
        row["params"] = params
        state = json.loads((folder / f"checkpoint-{steps}" / "trainer_state.json").read_text())
        logged = [e for e in state["log_history"] if "loss" in e]
        row["final_loss"] = logged[-1]["loss"]
        for metric in ("loramoe/group1_share_type1", "loramoe/group1_share_type0", "loramoe/blc_loss"):
            values = [e[metric] for e in state["log_history"] if metric in e]
            if values:
                row[metric] = values[-1]
        results[name] = row
        print(name, json.dumps(row), flush=True)
    wall, cpu = time.time() - start_wall, cpu_seconds() - start_cpu
    (out / "results.json").write_text(json.dumps({"arms": results, "wall_s": wall, "cpu_s": cpu}, indent=2))
    print(
        f"\nLoRAMoE demo: {BASE}, {args.train_size} builtin:loramoe_mix rows, batch {args.batch_size}, {steps} steps, "
        f"lr {args.lr}. Accuracy on {len(held_out)} held-out knowledge questions. Wall {wall / 60:.1f} min, "
        f"{cpu:.0f} CPU-s (one torch thread, shared machine).\n"
    )
    rows = [
        [
            name,
            f"{r['params']:,}",
            f"{r['knowledge_acc']:.3f}",
            f"{r['final_loss']:.3f}" if "final_loss" in r else "-",
            f"{r['loramoe/group1_share_type1']:.3f}" if "loramoe/group1_share_type1" in r else "-",
            f"{r['loramoe/group1_share_type0']:.3f}" if "loramoe/group1_share_type0" in r else "-",
        ]
        for name, r in results.items()
    ]
    header = ["arm", "trainable", "held-out knowledge acc", "last train loss", "group-1 share (type 1)", "(type 0)"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
