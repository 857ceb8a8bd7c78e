"""branch_filter's small-scale demonstration (the card's, scaled down for a CPU): `builtin:branch_traces` holds, for
each arithmetic word problem, a convergent gold CoT and a branchy one (1-3 templated "Alternatively ... / Going back
..." detours), mixed 50/50. The `branch_filter` transform (through `trl-ext transform`, so the runner's records are
written) drops the top half by branch rate. SFT smollm2-135m for the same number of steps on (a) the mixed set and
(b) the filtered set; then the `branch_rate` callback's evaluation on held-out problems: eval/branch_rate of the
greedy generations, eval/accuracy (final number == gold) and eval/len (generated tokens).

    python examples/demos/branch_filter_demo.py [--problems 80] [--max_steps 40] [--eval_problems 30]
"""

import argparse
import json
from pathlib import Path

from datasets import Dataset, DatasetDict

from trl_ext.cli import main as trl_ext
from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.branch_filter import BranchRateCallback

MODEL = "smollm2-135m"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=80, help="training problems (2 trajectories each)")
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--learning_rate", default="5e-5")
    parser.add_argument("--eval_problems", type=int, default=30)
    parser.add_argument("--max_new_tokens", type=int, default=192)
    parser.add_argument("--output_dir", default="outputs/branch-filter-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)

    data = load_dataset("builtin:branch_traces")
    mixed = (
        data["train"]
        .filter(lambda r: r["problem_id"] < args.problems)
        .select_columns(["prompt", "completion", "problem_id", "style", "answer"])
    )
    DatasetDict({"train": mixed}).save_to_disk(str(out / "mixed"))
    kept_file = out / "filtered.jsonl"
    code = trl_ext(["transform", "branch_filter", "--dataset_name", str(out / "mixed"), "--split", "train",
                    "--drop_frac", "0.5", "--output", str(kept_file)])  # fmt: skip
    if code:
        raise SystemExit(code)
    filtered = Dataset.from_json(str(kept_file))
    DatasetDict({"train": filtered.select_columns(["prompt", "completion"])}).save_to_disk(str(out / "filtered"))
    summary = json.loads((out / "filtered.jsonl.curation/branch_filter/train/summary.json").read_text())

    tokenizer = load_tokenizer(MODEL)
    evaluator = BranchRateCallback(data["test"], max_new_tokens=args.max_new_tokens, num_samples=args.eval_problems,
                                   batch_size=10)  # fmt: skip
    results = {"base": evaluator.evaluate(load_model(MODEL), tokenizer)}
    print("base", results["base"], flush=True)
    minutes = {}
    for name in ("mixed", "filtered"):
        minutes[name] = train_arm("sft", out / f"model-{name}", dataset_name=str(out / name),
                                  max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
                                  learning_rate=args.learning_rate, max_length=512, logging_steps=10)  # fmt: skip
        results[name] = evaluator.evaluate(load_model(str(out / f"model-{name}")), tokenizer)
        print(name, results[name], flush=True)

    rows = {"base": "-", "mixed": len(mixed), "filtered": len(filtered)}
    problems = {"base": "-", "mixed": len(set(mixed["problem_id"])), "filtered": len(set(filtered["problem_id"]))}
    styles = {
        "base": "-",
        "mixed": "{}/{}".format(*(sum(s == k for s in mixed["style"]) for k in ("convergent", "branchy"))),
        "filtered": "{}/{}".format(*(sum(s == k for s in filtered["style"]) for k in ("convergent", "branchy"))),
    }
    print(f"\nbranch_filter kept {summary['rows_out']} of {summary['rows_in']} rows; SFT (full) {args.max_steps} steps "
          f"x batch {args.batch_size}, lr {args.learning_rate}, {MODEL}; eval on {args.eval_problems} held-out "
          f"problems, greedy, {args.max_new_tokens} new tokens")  # fmt: skip
    table = [
        [name, rows[name], problems[name], styles[name], f"{r['eval/branch_rate']:.3f}", f"{r['eval/accuracy']:.3f}",
         f"{r['eval/len']:.1f}", f"{minutes[name]:.1f}" if name in minutes else "-"]
        for name, r in results.items()
    ]  # fmt: skip
    header = ["arm", "rows", "problems", "convergent/branchy", "eval/branch_rate", "eval/accuracy", "eval/len",
              "train min"]  # fmt: skip
    print(markdown_table(header, table))


if __name__ == "__main__":
    main()
