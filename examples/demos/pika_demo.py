"""PiKa's small-scale demonstration: run the `pika` transform (through `trl-ext transform`, so the runner's records
are written) on `builtin:pika_expert` with smollm2-135m as the stand-in reward model (mean token log-prob of a
response minus a length penalty), keep the `n_keep` hardest instructions' best responses, and SFT (LoRA) on them;
the control arm trains on an equal-size random subset with a random candidate each. On the 6 held-out expert
prompts each tuned model answers greedily and the stand-in RM judges the pair: the card's win-rate. Also reported:
the held-out NLL of the expert answers.

    python examples/demos/pika_demo.py [--n_keep 12] [--epochs 2] [--max_new_tokens 48]
"""

import argparse
import json
import random
from pathlib import Path

from datasets import Dataset, DatasetDict

from trl_ext.cli import main as trl_ext
from trl_ext.data import load_dataset
from trl_ext.devtools.demo import train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.inference.generation import generate
from trl_ext.inference.scoring import sequence_logprobs
from trl_ext.models import load_model, load_tokenizer

MODEL = "smollm2-135m"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_keep", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--length_penalty", type=float, default=0.002)
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--output_dir", default="outputs/pika-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)

    selected = out / "pika.jsonl"
    flags = ["--n_keep", str(args.n_keep), "--length_penalty", str(args.length_penalty), "--batch_size", "8"]
    code = trl_ext(["transform", "pika", "--model_name_or_path", MODEL, "--dataset_name", "builtin:pika_expert",
                    "--split", "train", *flags, "--output", str(selected)])  # fmt: skip
    if code:
        raise SystemExit(code)
    records = [json.loads(x) for x in (out / "pika.jsonl.curation/pika/train/scores.jsonl").read_text().splitlines()]
    pool = load_dataset("builtin:pika_expert", "candidates")["train"].to_list()
    experts = load_dataset("builtin:pika_expert", "sft")["train"]["completion"]
    picked_expert = sum(
        pool[r["index"]]["responses"][r["best_index"]] == experts[r["index"]][0]["content"]
        for r in records
        if r["kept"]
    )
    rng = random.Random(0)
    control = [
        {"prompt": [{"role": "user", "content": r["prompt"]}],
         "completion": [{"role": "assistant", "content": rng.choice(r["responses"])}]}
        for r in rng.sample(pool, args.n_keep)
    ]  # fmt: skip
    arms = {
        "pika": Dataset.from_json(str(selected)).select_columns(["prompt", "completion"]),
        "random": Dataset.from_list(control),
    }
    tokenizer = load_tokenizer(MODEL)
    base = load_model(MODEL)
    test = load_dataset("builtin:pika_expert", "sft")["test"].select_columns(["prompt", "completion"])
    answers, nll = {}, {"base": completion_nll(base, tokenizer, test)}
    for name, data in arms.items():
        folder = out / name
        DatasetDict({"train": data}).save_to_disk(str(folder / "data"))
        train_arm("sft", folder / "model", dataset_name=str(folder / "data"), use_peft=True, lora_r=16,
                  lora_alpha=32, learning_rate="2e-4", num_train_epochs=args.epochs, per_device_train_batch_size=4,
                  max_length=256, logging_steps=1)  # fmt: skip
        tuned = load_model(str(folder / "model"))
        nll[name] = completion_nll(tuned, tokenizer, test)
        answers[name] = generate(tuned, tokenizer, test["prompt"], max_new_tokens=args.max_new_tokens, progress=False)
        print(name, "held-out expert NLL", f"{nll[name]:.3f}", flush=True)

    def rm(prompts, responses):  # the stand-in reward model: the base model's mean log-prob minus a length penalty
        done = [[{"role": "assistant", "content": r}] for r in responses]
        scored = sequence_logprobs(base, tokenizer, prompts, done, progress=False)
        return [s["mean_logprob"] - args.length_penalty * s["num_tokens"] for s in scored]

    pika_r, random_r = rm(test["prompt"], answers["pika"]), rm(test["prompt"], answers["random"])
    wins = sum(a > b for a, b in zip(pika_r, random_r, strict=True))
    ties = sum(a == b for a, b in zip(pika_r, random_r, strict=True))
    print(f"\npika kept {len(arms['pika'])} of {len(pool)} rows ({picked_expert} of them with the expert answer); "
          f"SFT LoRA r=16, {args.epochs} epochs, {MODEL}")  # fmt: skip
    print("| arm | rows | held-out expert NLL | stand-in RM of greedy answers (mean) |\n| --- | --- | --- | --- |")
    print(f"| base | - | {nll['base']:.3f} | - |")
    for name, r in (("pika", pika_r), ("random", random_r)):
        print(f"| {name} | {len(arms[name])} | {nll[name]:.3f} | {sum(r) / len(r):.3f} |")
    print(f"win-rate pika vs random (stand-in RM, {len(pika_r)} held-out prompts): {wins}/{len(pika_r)}, ties {ties}")


if __name__ == "__main__":
    main()
