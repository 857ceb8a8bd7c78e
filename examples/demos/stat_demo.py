"""STAT's small-scale demonstration (the card's): `builtin:stat_skills`, six arithmetic skills with tags, the
rule-based teacher (`--teacher arith`: a diagnosis names the failed question's skills), so no teacher LLM is needed.

1. A brief SFT of smollm2-135m on the pool without the `weak` skill's items (held back): the student is weak there.
2. `trl-ext transform stat` with that student: it answers the 140 validation questions, the teacher diagnoses the
   wrong ones, and STAT-Sel draws `target_size` (question, solution) rows from the pool around the MSP.
3. From the student, 1 epoch of SFT on the STAT-Sel rows against 1 epoch on as many rows drawn uniformly from the
   pool (gold solutions); per-skill exact-match accuracy (greedy) on the 140 held-out test questions.

    python examples/demos/stat_demo.py [--weak subtract] [--warm_steps 60] [--target_size 240]
"""

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from datasets import Dataset, DatasetDict

from trl_ext.cli import main as trl_ext
from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.inference.generation import generate
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.stat.data import SKILLS

MODEL = "smollm2-135m"


def accuracy_by_skill(model_dir: str, test, max_new_tokens: int) -> dict[str, float]:
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    answers = generate(model, tok, test["prompt"], max_new_tokens, 16, progress=False)
    hits = defaultdict(list)
    for text, gold, skills in zip(answers, test["answer"], test["skills"], strict=True):
        ok = is_correct(text, gold)
        hits["all"].append(ok)
        for s in skills:
            hits[s].append(ok)
    return {k: sum(v) / len(v) for k, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weak", default="subtract", choices=SKILLS)
    parser.add_argument("--warm_steps", type=int, default=60)
    parser.add_argument("--target_size", type=int, default=240)
    parser.add_argument("--learning_rate", default="1e-4")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--output_dir", default="outputs/stat-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)
    sft = load_dataset("builtin:stat_skills", "sft")
    pool, test = sft["train"], sft["test"]
    common = dict(model_name_or_path=MODEL, learning_rate=args.learning_rate, per_device_train_batch_size=8,
                  max_length=96, logging_steps=5)  # fmt: skip

    # 1. the student: SFT without the weak skill's items
    warm_rows = pool.filter(lambda r: args.weak not in r["skills"]).select_columns(["prompt", "completion"])
    DatasetDict({"train": warm_rows}).save_to_disk(str(out / "warm_data"))
    student = out / "student"
    minutes = {"student": train_arm("sft", student, dataset_name=str(out / "warm_data"), max_steps=args.warm_steps,
                                    **common)}  # fmt: skip

    # 2. STAT-Sel with that student (through the CLI, so the records are written next to the output)
    selected = out / "stat.jsonl"
    code = trl_ext(["transform", "stat", "--model_name_or_path", str(student), "--dataset_name", "builtin:stat_skills",
                    "--split", "train", "--val_dataset", "builtin:stat_skills", "--target_size",
                    str(args.target_size), "--max_new_tokens", str(args.max_new_tokens), "--output", str(selected)])  # fmt: skip
    if code:
        raise SystemExit(code)
    stat_rows = Dataset.from_json(str(selected))
    record = json.loads((out / "stat.jsonl.curation/stat/train/stat.json").read_text())["stats"]
    rng = random.Random(0)
    uniform = pool.select(sorted(rng.sample(range(len(pool)), len(stat_rows))))
    arms = {"stat-sel": stat_rows.select_columns(["prompt", "completion"]),
            "uniform": uniform.select_columns(["prompt", "completion"])}  # fmt: skip

    # 3. one epoch each from the student, then per-skill accuracy on the held-out test split
    acc = {"student": accuracy_by_skill(str(student), test, args.max_new_tokens)}
    for name, data in arms.items():
        DatasetDict({"train": data}).save_to_disk(str(out / name / "data"))
        minutes[name] = train_arm("sft", out / name / "model", dataset_name=str(out / name / "data"),
                                  num_train_epochs=1, **{**common, "model_name_or_path": str(student)})  # fmt: skip
        acc[name] = accuracy_by_skill(str(out / name / "model"), test, args.max_new_tokens)
        print(name, acc[name], flush=True)

    weak_share = {
        "stat-sel": sum(args.weak in s for s in [load_skills(r) for r in stat_rows]) / len(stat_rows),
        "uniform": sum(args.weak in s for s in uniform["skills"]) / len(uniform),
    }
    print(f"\nweak skill: {args.weak}; student: {args.warm_steps} SFT steps on {len(warm_rows)} pool rows without it")
    print(f"STAT: n_hard {record['stat/n_hard']}/{record['stat/val_questions']}, MSP {record['stat/msp']}, "
          f"{record['stat/rows']} rows from {record['stat/unique_questions']} unique questions")  # fmt: skip
    header = ["arm", "rows", f"rows needing {args.weak}", "all", *SKILLS, "train min"]
    rows = []
    for name in ("student", "stat-sel", "uniform"):
        n = len(arms[name]) if name in arms else len(warm_rows)
        share = f"{weak_share[name]:.0%}" if name in weak_share else "0%"
        rows.append([name, n, share, *(f"{acc[name].get(k, float('nan')):.3f}" for k in ("all", *SKILLS)),
                     f"{minutes[name]:.1f}"])  # fmt: skip
    print(markdown_table(header, rows))


def load_skills(row: dict) -> tuple[str, ...]:
    from trl_ext_plugins.stat.data import skills_of

    return skills_of(row["prompt"][0]["content"].split("?")[0] + "?")


if __name__ == "__main__":
    main()
