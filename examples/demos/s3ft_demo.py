"""S3FT's small-scale demonstration: build the S3FT dataset from `builtin:s3ft_problems` (math) with smollm2-135m
itself (through `trl-ext transform s3ft`, so the runner's records are written), then SFT (LoRA) two arms for the
same steps: on the gold answers (plain SFT, the card's arm A) and on the S3FT targets (arm B). Read:

1. in-task accuracy: greedy answers to the held-out problems, judged by `numeric_match`;
2. drift on a general probe: the token-mean NLL, under each model, of the responses the *base* model itself gave to
   unrelated chat prompts (the card's proxy for leaving the base distribution); the drop is tuned minus base.

    python examples/demos/s3ft_demo.py [--n_test 24] [--epochs 2] [--max_new_tokens 40]
"""

import argparse
import json
from collections import Counter
from pathlib import Path

from datasets import Dataset, DatasetDict

from trl_ext.cli import main as trl_ext
from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.evaluation.judges import numeric_match
from trl_ext.inference.generation import generate
from trl_ext.models import load_model, load_tokenizer

MODEL = "smollm2-135m"

# Unrelated chat prompts for the drift probe (the base model answers them; the tuned models are scored on those).
GENERAL_PROMPTS = [
    "Give me two tips for sleeping better.",
    "What is the capital of Japan, and what is it known for?",
    "Write one sentence describing autumn.",
    "Explain what a noun is to a child.",
    "Suggest a name for a small bakery.",
    "Why is the sky blue? Answer briefly.",
    "List three fruits that are red.",
    "How do I politely decline an invitation?",
    "What does a librarian do?",
    "Describe a cat in one sentence.",
    "Give a short tip for learning a new language.",
    "What is photosynthesis, in one sentence?",
    "Recommend a hobby for a rainy day.",
    "What should I pack for a day at the beach?",
    "Write a friendly greeting for a new neighbour.",
    "Why do people exercise?",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_test", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max_new_tokens", type=int, default=40)
    parser.add_argument("--output_dir", default="outputs/s3ft-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)

    built = out / "s3ft.jsonl"
    code = trl_ext(["transform", "s3ft", "--model_name_or_path", MODEL, "--dataset_name", "builtin:s3ft_problems",
                    "--split", "train", "--max_new_tokens", str(args.max_new_tokens), "--batch_size", "16",
                    "--output", str(built)])  # fmt: skip
    if code:
        raise SystemExit(code)
    s3ft_rows = Dataset.from_json(str(built))
    metrics = json.loads((out / "s3ft.jsonl.curation/s3ft/train/s3ft_metrics.json").read_text())
    per_kind = Counter((r["kind"], r["s3ft_source"]) for r in s3ft_rows)
    gold_rows = load_dataset("builtin:s3ft_problems")["train"]
    arms = {
        "SFT on gold": gold_rows.select_columns(["prompt", "completion"]),
        "S3FT": s3ft_rows.select_columns(["prompt", "completion"]),
    }

    tokenizer = load_tokenizer(MODEL)
    base = load_model(MODEL)
    test = load_dataset("builtin:s3ft_problems")["test"].select(range(args.n_test))
    probe_prompts = [[{"role": "user", "content": p}] for p in GENERAL_PROMPTS]
    probe_answers = generate(base, tokenizer, probe_prompts, max_new_tokens=64, progress=False)
    probe = Dataset.from_list(
        [{"prompt": p, "completion": [{"role": "assistant", "content": a}]}
         for p, a in zip(probe_prompts, probe_answers, strict=True)]
    )  # fmt: skip

    def evaluate(model) -> tuple[float, float]:
        answers = generate(model, tokenizer, test["prompt"], max_new_tokens=args.max_new_tokens, progress=False)
        accuracy = sum(numeric_match(None, a, g) for a, g in zip(answers, test["answer"], strict=True)) / len(test)
        return accuracy, completion_nll(model, tokenizer, probe)

    results = {"base": evaluate(base)}
    minutes = {}
    for name, data in arms.items():
        folder = out / name.replace(" ", "_").lower()
        DatasetDict({"train": data}).save_to_disk(str(folder / "data"))
        minutes[name] = train_arm("sft", folder / "model", dataset_name=str(folder / "data"), use_peft=True,
                                  lora_r=16, lora_alpha=32, learning_rate="2e-4", num_train_epochs=args.epochs,
                                  per_device_train_batch_size=8, max_length=256, logging_steps=4)  # fmt: skip
        results[name] = evaluate(load_model(str(folder / "model")))
        print(name, results[name], flush=True)

    print(f"\nS3FT routing of {len(s3ft_rows)} training problems ({MODEL}, greedy, max_new_tokens "
          f"{args.max_new_tokens}, judge numeric_match):")  # fmt: skip
    print(markdown_table(
        ["kind", "self", "paraphrase", "gold"],
        [[k] + [per_kind[(k, s)] for s in ("self", "paraphrase", "gold")] for k in sorted({k for k, _ in per_kind})],
    ))  # fmt: skip
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in metrics.items()})
    print(f"\nSFT LoRA r=16, {args.epochs} epochs of {len(gold_rows)} rows (same steps per arm); {args.n_test} held-out "
          f"problems; probe: {len(probe)} base-model chat responses")  # fmt: skip
    base_nll = results["base"][1]
    rows = [[name, f"{acc:.3f}", f"{nll:.3f}", "-" if name == "base" else f"{nll - base_nll:+.3f}",
             f"{minutes[name]:.1f}" if name in minutes else "-"] for name, (acc, nll) in results.items()]  # fmt: skip
    print(markdown_table(["arm", "in-task accuracy", "probe NLL", "drift (NLL - base)", "train min"], rows))


if __name__ == "__main__":
    main()
