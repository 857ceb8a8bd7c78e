"""GRAPE's small-scale demonstration: for arith questions with three correct candidate solutions each (gold,
verbose, terse), pick one per question by GRAPE (highest mean token log-prob under the base model), at random, or
always gold; report each pick's initial loss under the base model, then SFT (LoRA) on each and report held-out
exact match and the final training loss.

    python examples/demos/grape_demo.py [--questions 120] [--epochs 1] [--eval_size 100]
"""

import argparse
import json
import random
from pathlib import Path

from datasets import Dataset, DatasetDict

from trl_ext import get
from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import train_arm
from trl_ext.evaluation import completion_nll, exact_match
from trl_ext.models import load_model, load_tokenizer


def pick(rows, rule: str, rng: random.Random) -> list[dict]:
    out = []
    for row in rows:
        options = [(c, s) for c, s in zip(row["candidates"], row["candidate_sources"], strict=True) if s != "wrong"]
        chosen = next(c for c, s in options if s == "gold") if rule == "gold" else rng.choice(options)[0]
        out.append(
            {
                "prompt": row["prompt"],
                "completion": [{"role": "assistant", "content": chosen}],
                "answer": row["answer"],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--eval_size", type=int, default=100)
    parser.add_argument("--output_dir", default="outputs/grape-demo")
    args = parser.parse_args()

    pool = load_dataset("builtin:arith_candidates", form="grouped")["train"].select(range(args.questions))
    # The paper filters to verified-correct candidates before selection; do the same.
    pool = pool.map(
        lambda r: {
            k: [v for v, s in zip(r[k], r["candidate_sources"], strict=True) if s != "wrong"]
            for k in ("candidates", "candidate_sources")
        }
    )
    model, tokenizer = load_model("smollm2-135m"), load_tokenizer("smollm2-135m")
    grape = get("transform", "grape").build(model=model, tokenizer=tokenizer, max_length=256)
    arms = {"grape": grape(pool), "random": pick(pool, "random", random.Random(0)), "gold": pick(pool, "gold", None)}
    eval_set = load_dataset("builtin:arith", form="sft")["test"].select(range(args.eval_size))
    base_acc = exact_match(model, tokenizer, eval_set, is_correct)
    results = {}
    for name, rows in arms.items():
        data = (Dataset.from_list(rows) if isinstance(rows, list) else rows).select_columns(
            ["prompt", "completion", "answer"]
        )
        initial = completion_nll(model, tokenizer, data)
        folder = Path(args.output_dir) / name
        DatasetDict({"train": data}).save_to_disk(str(folder / "data"))
        train_arm(
            "sft",
            folder / "model",
            dataset_name=str(folder / "data"),
            use_peft=True,
            lora_r=16,
            lora_alpha=32,
            learning_rate="2e-4",
            num_train_epochs=args.epochs,
            per_device_train_batch_size=8,
            max_length=256,
            logging_steps=1,
            save_strategy="epoch",
        )
        state = json.loads(next((folder / "model").glob("checkpoint-*/trainer_state.json")).read_text())
        losses = [e["loss"] for e in state["log_history"] if "loss" in e]
        tuned = load_model(str(folder / "model"))
        results[name] = {
            "initial_nll": initial,
            "final_train_loss": sum(losses[-3:]) / len(losses[-3:]),
            "exact_match": exact_match(tuned, tokenizer, eval_set, is_correct),
        }
        print(name, json.dumps(results[name]), flush=True)
    print(
        f"\n{args.questions} arith questions x 3 correct candidates; SFT LoRA r=16, {args.epochs} epoch(s); exact "
        f"match on {args.eval_size} held-out problems (base model: {base_acc:.1%})"
    )
    print("| pick | initial NLL (base) | final train loss | exact match |\n| --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['initial_nll']:.3f} | {r['final_train_loss']:.3f} | {r['exact_match']:.1%} |")


if __name__ == "__main__":
    main()
