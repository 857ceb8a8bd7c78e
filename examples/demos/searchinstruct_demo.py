"""SearchInstruct's small-scale demonstration (card): build a grounded QA set about the fictitious country of
`builtin:searchinstruct_world` with the `searchinstruct` transform (through `trl-ext transform`, so the curation
records are written; the LLM is the world's deterministic template stand-in, the card's "template answerer for
speed"; retrieval is BM25 over the 50 documents), fine-tune smollm2-135m (LoRA) on it, and compare with fine-tuning
on the 10 seeds with their hand-written answers for the same number of steps. Metric: closed-book accuracy on the 30
held-out questions (greedy answer contains the gold answer), plus the held-out NLL of the gold answers.

Also measured, not trained on: the same transform with smollm2-135m itself as expander and answerer (lenient
parsing), to show what a 135M model produces in this role.

    python examples/demos/searchinstruct_demo.py [--iterations 30] [--epochs 3] [--learning_rate 1e-3]
"""

import argparse
import json
import math
from pathlib import Path

from datasets import Dataset, DatasetDict

from trl_ext.cli import main as trl_ext
from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.inference.generation import generate
from trl_ext.models import load_model, load_tokenizer

MODEL = "smollm2-135m"
DATA = "builtin:searchinstruct_world"


def contains(answer: str, gold: str) -> bool:
    return gold.lower() in answer.lower()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--sample_size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning_rate", default="1e-3")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--model_llm_iterations", type=int, default=2, help="0 skips the smollm2-as-LLM run")
    parser.add_argument("--output_dir", default="outputs/searchinstruct-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)

    built = out / "si.jsonl"
    code = trl_ext(["transform", "searchinstruct", "--model_name_or_path", MODEL, "--dataset_name", DATA,
                    "--split", "train", "--llm", "template", "--iterations", str(args.iterations), "--sample_size",
                    str(args.sample_size), "--output", str(built)])  # fmt: skip
    if code:
        raise SystemExit(code)
    summary = json.loads((out / "si.jsonl.curation/searchinstruct/train/answer/summary.json").read_text())

    if args.model_llm_iterations:
        code = trl_ext(["transform", "searchinstruct", "--model_name_or_path", MODEL, "--dataset_name", DATA,
                        "--split", "train", "--llm", "model", "--lenient_parse", "true", "--iterations",
                        str(args.model_llm_iterations), "--sample_size", "5", "--max_new_tokens", "96",
                        "--output", str(out / "si_smollm2.jsonl")])  # fmt: skip
        if code:
            raise SystemExit(code)

    si = Dataset.from_json(str(built)).select_columns(["prompt", "completion"])
    seeds = load_dataset(DATA, "sft")["train"].select_columns(["prompt", "completion"])
    test = load_dataset(DATA, "sft")["test"]
    gold = [c[0]["content"] for c in test["completion"]]
    steps = math.ceil(len(si) * args.epochs / args.batch_size)  # both arms train for the same steps
    arms = {"searchinstruct": si, "seeds only": seeds}
    tokenizer = load_tokenizer(MODEL)
    base = load_model(MODEL)
    results = {}

    def evaluate(model):
        answers = generate(model, tokenizer, test["prompt"], max_new_tokens=args.max_new_tokens, progress=False)
        acc = sum(contains(a, g) for a, g in zip(answers, gold, strict=True)) / len(gold)
        return acc, completion_nll(model, tokenizer, test.select_columns(["prompt", "completion"])), answers

    results["base (no tuning)"] = (0, *evaluate(base))
    for name, data in arms.items():
        folder = out / name.replace(" ", "_")
        DatasetDict({"train": data}).save_to_disk(str(folder / "data"))
        minutes = train_arm("sft", folder / "model", dataset_name=str(folder / "data"), use_peft=True, lora_r=16,
                            lora_alpha=32, learning_rate=args.learning_rate, max_steps=steps,
                            per_device_train_batch_size=args.batch_size, max_length=256, logging_steps=5)  # fmt: skip
        results[name] = (len(data), *evaluate(load_model(str(folder / "model"))))
        print(f"{name}: {minutes:.1f} min, accuracy {results[name][1]:.3f}", flush=True)

    print(f"\nsearchinstruct set: {summary['rows_in']} generated questions -> {summary['rows_out']} QA pairs; "
          f"drops: {summary['drop_reasons']}")  # fmt: skip
    if args.model_llm_iterations:
        record = out / "si_smollm2.jsonl.curation/searchinstruct/train"
        expand = [json.loads(x) for x in (record / "expand/scores.jsonl").read_text().splitlines()]
        answer = json.loads((record / "answer/summary.json").read_text())
        print(f"smollm2-135m as the LLM: {len(expand)} expansion calls, {sum(e['n_questions'] for e in expand)} "
              f"questions parsed, {answer['rows_out']} QA pairs kept; drops: {answer['drop_reasons']}")  # fmt: skip
    print(f"SFT LoRA r=16, lr {args.learning_rate}, {steps} steps of batch {args.batch_size} per arm, {MODEL}")
    rows = [[name, n, f"{acc:.3f} ({round(acc * len(gold))}/{len(gold)})", f"{nll:.3f}"]
            for name, (n, acc, nll, _) in results.items()]  # fmt: skip
    print(markdown_table(["arm", "train rows", "closed-book accuracy (contains gold)", "held-out gold NLL"], rows))
    for name, (*_, answers) in results.items():
        print(f"\n{name}, first 3 held-out answers:")
        for q, a, g in list(zip(test["prompt"], answers, gold, strict=True))[:3]:
            print(f"  Q: {q[0]['content']} | gold: {g} | A: {a!r}")


if __name__ == "__main__":
    main()
