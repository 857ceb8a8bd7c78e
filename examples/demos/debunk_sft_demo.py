"""debunk_sft's small-scale demonstration: one-step Sokoban (6x6 grids, one box, BFS-labelled next action), full
SFT of SmolLM2-135M-Instruct on (a) the frozen Up/Down/Left/Right instruction, answer only (plain SFT on the
unmodified data), (b) per-example random action words, answer only, (c) random words + CoT targets; the same
rows and steps for each arm. Prints next-action success on held-out states under the standard words, an unseen
vocabulary (North/South/West/East) and the 7x7 (harder) states.

    python examples/demos/debunk_sft_demo.py [--train_rows 40] [--epochs 1] [--batch_size 4] [--eval_rows 24]
"""

import argparse
import time
from pathlib import Path

from datasets import DatasetDict
from transformers import AutoModelForCausalLM, AutoTokenizer

from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext_plugins.debunk_sft.callbacks import success_rate, vocab_variant
from trl_ext_plugins.debunk_sft.data import build_sokoban

ARMS = {
    "(a) frozen words, answer only": None,
    "(b) random words, answer only": "debunk_action_vocab",
    "(c) random words + CoT": "debunk_action_vocab,debunk_cot_target",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_rows", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--eval_rows", type=int, default=24)
    parser.add_argument("--output_dir", default="outputs/debunk-sft-demo")
    args = parser.parse_args()

    data = build_sokoban("sft")
    root = Path(args.output_dir)
    data_dir = root / "data"
    DatasetDict({"train": data["train"].select(range(args.train_rows))}).save_to_disk(str(data_dir))
    test = data["test"].select(range(args.eval_rows))
    envs = {
        "standard": vocab_variant(test, "standard"),
        "cardinal (unseen)": vocab_variant(test, "cardinal"),
        "7x7 (harder)": data["hard"].select(range(args.eval_rows)),
    }
    rows = []
    for label, transforms in ARMS.items():
        out = root / label.split(" ")[0].strip("()")
        flags = {"transforms": transforms} if transforms else {}
        minutes = train_arm(
            "sft",
            out,
            model_name_or_path="smollm2-135m",
            dataset_name=str(data_dir),
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate="1e-4",
            max_length=512,
            **flags,
        )
        model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
        start = time.time()
        budget = 100 if "CoT" in label else 12
        scores = [success_rate(model, tok, ds, max_new_tokens=budget, batch_size=24) for ds in envs.values()]
        rows.append([label, *(f"{s:.2f}" for s in scores), f"{minutes:.1f}", f"{(time.time() - start) / 60:.1f}"])
        print(rows[-1], flush=True)
    steps = -(-args.train_rows // args.batch_size) * args.epochs
    print(f"\nSFT smollm2-135m, {args.train_rows} states, {args.epochs} epochs ({steps} steps, batch {args.batch_size}, lr 1e-4); "
          f"next-action success on {args.eval_rows} held-out states per column")  # fmt: skip
    print(markdown_table(["arm", *envs, "train min", "eval min"], rows))


if __name__ == "__main__":
    main()
