"""The PoFT card's small-scale demonstration (shared/papers/poft.md): arithmetic instruction pairs with 30% corrupted
responses (builtin:poft_arith: random character edits and shuffled answers), scored with SmolLM2-135M-Instruct as the
single aligned model (M=1) by the `poft_score` transform, then SmolLM2-135M-Instruct fine-tuned for 3 epochs with
plain SFT vs PoFT on the same data, steps and learning rate. Read, per epoch: the NLL on a clean held-out set, and
PoFT's mean coefficient tau = sigmoid(r_bar - r_theta) on clean vs corrupted training examples. The card expects
tau(corrupted) < tau(clean) and PoFT's clean held-out NLL to degrade less over the epochs than SFT's.

Scaled down from the card (1,000 pairs); the README's run (--train_size 64 --eval_size 60) took 12 minutes on one CPU
thread. The built-in dataset's own scores are generated stand-ins; this demo replaces them with SmolLM2's real ones.
With M=1 and the aligned model equal to the starting policy, r_theta = r_bar at step 0 (tau = 0.5 everywhere): tau then
falls on the examples the model gains on.

    python examples/demos/poft_demo.py [--train_size 128] [--epochs 3] [--eval_size 100]
    python examples/demos/poft_demo.py --train_size 8 --epochs 1 --batch_size 4 --eval_size 4   # smoke test
"""

import argparse
import json
import math
import shutil
import statistics
from pathlib import Path

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.inference.scoring import sequence_logprobs
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.poft import poft_score_dataset

BASE = "smollm2-135m"
KINDS = ("none", "edit", "shuffle")


def mean_tau(model, tokenizer, train, beta: float = 1.0) -> dict[str, float]:
    """PoFT's coefficient tau = sigmoid(beta * (r_bar - r_theta)) averaged per kind of training row."""
    scores = sequence_logprobs(model, tokenizer, train["prompt"], train["completion"], progress=False)
    taus: dict[str, list[float]] = {k: [] for k in KINDS}
    for s, r_bar, kind in zip(scores, train["poft_ref_scores"], train["corruption"], strict=True):
        taus[kind].append(1.0 / (1.0 + math.exp(-beta * (statistics.mean(r_bar) - s["mean_logprob"]))))
    return {k: statistics.mean(v) for k, v in taus.items() if v}


def checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", default="5e-5")
    parser.add_argument("--eval_size", type=int, default=100, help="clean held-out pairs for the NLL")
    parser.add_argument("--keep_checkpoints", action="store_true")
    parser.add_argument("--output_dir", default="outputs/demo-poft")
    args = parser.parse_args()

    out = Path(args.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    data = load_dataset("builtin:poft_arith")
    test = data["test"].select(range(args.eval_size))
    # r_j from the aligned model (the same code as `--transforms poft_score:models=smollm2-135m`)
    train = poft_score_dataset(data["train"].select(range(args.train_size)), BASE, max_length=256)
    train_file = out / "data" / "train_scored.jsonl"
    train.to_json(str(train_file), lines=True)

    tokenizer = load_tokenizer(BASE)
    base = load_model(BASE)
    nll = {"sft": [completion_nll(base, tokenizer, test)], "poft": []}
    nll["poft"].append(nll["sft"][0])
    taus = [mean_tau(base, tokenizer, train)]
    del base

    common = dict(
        model_name_or_path=BASE,
        dataset_name=str(train_file),
        learning_rate=args.learning_rate,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        gradient_checkpointing=False,
        save_strategy="epoch",
        save_only_model=True,
        logging_steps=5,
    )
    minutes = {}
    for method in ("sft", "poft"):
        minutes[method] = train_arm(method, out / method, **common)
        for checkpoint in checkpoints(out / method):
            model = load_model(str(checkpoint))
            nll[method].append(completion_nll(model, tokenizer, test))
            if method == "poft":
                taus.append(mean_tau(model, tokenizer, train))
            if not args.keep_checkpoints:
                shutil.rmtree(checkpoint)
        print(method, json.dumps({"nll": nll[method], "minutes": minutes[method]}), flush=True)
    (out / "results.json").write_text(json.dumps({"nll": nll, "tau": taus, "minutes": minutes}, indent=2))

    counts = {k: train["corruption"].count(k) for k in KINDS}
    print(
        f"\nPoFT demo: {BASE}, builtin:poft_arith {args.train_size} pairs ({counts['edit']} edited, "
        f"{counts['shuffle']} shuffled), scored by {BASE} (M=1); {args.epochs} epochs x batch {args.batch_size}, "
        f"lr {args.learning_rate}; train minutes SFT {minutes['sft']:.1f}, PoFT {minutes['poft']:.1f}.\n"
    )
    print(f"Clean held-out NLL ({len(test)} pairs), per epoch:\n")
    print("| epoch | SFT | PoFT |\n| --- | --- | --- |")
    for epoch, (a, b) in enumerate(zip(nll["sft"], nll["poft"], strict=False)):
        print(f"| {epoch} | {a:.4f} | {b:.4f} |")
    print("\nPoFT's mean tau = sigmoid(r_bar - r_theta) on the training rows, per epoch:\n")
    print("| epoch | clean | char edits | shuffled |\n| --- | --- | --- | --- |")
    for epoch, t in enumerate(taus):
        print(f"| {epoch} | " + " | ".join(f"{t[k]:.3f}" if k in t else "-" for k in KINDS) + " |")


if __name__ == "__main__":
    main()
