"""The Q-Tuning card's small-scale demonstration (shared/papers/qtuning.md), scaled down: SmolLM2-135M-Instruct + LoRA
r=8 on builtin:arith training problems of which 20% have corrupted targets (worked solutions rotated between those
questions: harmful noise), micro-batch 8, one epoch. Arms at the same number of optimizer steps: full data (plain
SFT), random 25% of each micro-batch (`uds --uds_random`, K = 2 of 8) and Q-Tuning (r_s = 25%, r_tok = 70%). Read:
token-mean NLL of the clean completions of held-out problems (the card reads GSM8K exact match, which needs
generation; the NLL is the cheap proxy on CPU), and where the Error-Uncertainty plane puts the corrupted rows: the
share of corrupted vs clean rows kept (Q2 or Q4) when the training micro-batches are scored by the base model and by
the Q-Tuning model (the card expects corrupted rows mostly outside Q2 and Q4).

    python examples/demos/qtuning_demo.py [--train_size 96] [--eval_size 40]
    python examples/demos/qtuning_demo.py --train_size 16 --eval_size 4   # smoke test
"""

import argparse
import json
from pathlib import Path

from datasets import Dataset

from trl_ext.data import load_dataset
from trl_ext.data.noise import corrupt_completions, corrupted_indices
from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.models import load_model, load_tokenizer

BASE = "smollm2-135m"


def corrupted_rows(train: Dataset, share: float, seed: int = 0) -> tuple[Dataset, list[bool]]:
    """The rows with `share` of them corrupted (the `corrupt_completions` transform) and a flag per row."""
    rows = train.select_columns(["prompt", "completion"])
    corrupted = set(corrupted_indices(len(rows), share, seed))
    return corrupt_completions(share=share, seed=seed)(rows), [i in corrupted for i in range(len(rows))]


def placement(model, data: Dataset, flags: list[bool], tokenizer, batch_size: int, out: Path) -> dict:
    """Score the training rows in micro-batches of `batch_size` (in order) with Q-Tuning's selection under `model`:
    the share of corrupted and of clean rows kept (Q2 or Q4), and in Q2 alone."""
    from trl_ext_plugins.qtuning import QTuningConfig, QTuningTrainer

    config = QTuningConfig(
        output_dir=str(out), per_device_train_batch_size=batch_size, max_length=256, bf16=False, report_to="none"
    )
    trainer = QTuningTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    rows = trainer.train_dataset
    assert len(rows) == len(flags), "rows were dropped in preprocessing; the flags would not line up"
    counts = {"corrupted": [0, 0, 0], "clean": [0, 0, 0]}  # kept, in Q2, total
    device = trainer.accelerator.device
    for start in range(0, len(rows) - batch_size + 1, batch_size):
        batch = trainer.data_collator([rows[i] for i in range(start, start + batch_size)])
        batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
        s = trainer.inspect(batch)
        for j in range(batch_size):
            c = counts["corrupted" if flags[start + j] else "clean"]
            c[0] += int(s.keep_samples[j])
            c[1] += int(s.q2[j])
            c[2] += 1
    return {k: {"kept": v[0] / max(v[2], 1), "q2": v[1] / max(v[2], 1), "rows": v[2]} for k, v in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_size", type=int, default=96, help="training rows (one epoch)")
    parser.add_argument("--corrupt", type=float, default=0.2)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_size", type=int, default=40)
    parser.add_argument("--learning_rate", default="2e-4")
    parser.add_argument("--arms", default="full,random,qtuning", help="which arms to train (comma-separated)")
    parser.add_argument("--output_dir", default="outputs/demo-qtuning")
    args = parser.parse_args()

    out = Path(args.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    arith = load_dataset("builtin:arith", form="sft")
    train, flags = corrupted_rows(arith["train"].select(range(args.train_size)), args.corrupt)
    train_file = out / "data" / "train.jsonl"
    train.to_json(str(train_file), lines=True)
    held_out = arith["test"].select(range(args.eval_size))
    steps = args.train_size // args.batch_size

    tokenizer = load_tokenizer(BASE)
    results = {"base model": {"held_out_nll": completion_nll(load_model(BASE), tokenizer, held_out)}}
    common = dict(
        model_name_or_path=BASE,
        dataset_name=str(train_file),
        use_peft=True,
        lora_r=8,
        lora_alpha=16,
        lora_target_modules="all-linear",
        learning_rate=args.learning_rate,
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        gradient_checkpointing=False,
        logging_steps=max(1, steps // 4),
    )
    k = max(1, round(0.25 * args.batch_size))
    arms = (
        ("full data (sft)", "full", "sft", []),
        (f"random 25% ({k} of {args.batch_size})", "random", "uds", ["--uds_k", str(k), "--uds_random", "true"]),
        ("Q-Tuning (25%, 70%)", "qtuning", "qtuning", ["--qt_sample_ratio", "0.25", "--qt_token_ratio", "0.7"]),
    )
    wanted = {a.strip().lower() for a in args.arms.split(",")}
    placements = {}
    placements["base model"] = placement(
        load_model(BASE), train, flags, tokenizer, args.batch_size, out / "placement-base"
    )
    print("placement under the base model", json.dumps(placements["base model"]), flush=True)
    for name, key, method, extra in arms:
        if key not in wanted:
            continue
        folder = out / key
        minutes = train_arm(method, folder, extra, **common)
        tuned = load_tuned(folder, BASE)
        results[name] = {"held_out_nll": completion_nll(tuned, tokenizer, held_out), "train_minutes": minutes}
        if key == "qtuning":
            placements["Q-Tuning model"] = placement(
                tuned, train, flags, tokenizer, args.batch_size, out / "placement-qtuning"
            )
        print(name, json.dumps(results[name]), flush=True)
    (out / "results.json").write_text(json.dumps({"arms": results, "placement": placements}, indent=2))

    print(
        f"\nQ-Tuning demo: {BASE} + LoRA r=8, {args.train_size} builtin:arith rows ({args.corrupt:.0%} with rotated "
        f"targets), batch {args.batch_size}, {steps} optimizer steps (one epoch), lr {args.learning_rate}. NLL of the "
        f"clean completions of {args.eval_size} held-out problems.\n"
    )
    rows = [
        [name, f"{r['held_out_nll']:.3f}", f"{r['train_minutes']:.2f}" if "train_minutes" in r else "-"]
        for name, r in results.items()
    ]
    print(markdown_table(["arm", "held-out NLL", "train min"], rows))
    print()
    rows = [
        [
            who,
            f"{p['corrupted']['kept']:.1%} ({p['corrupted']['rows']})",
            f"{p['clean']['kept']:.1%} ({p['clean']['rows']})",
            f"{p['corrupted']['q2']:.1%}",
            f"{p['clean']['q2']:.1%}",
        ]
        for who, p in placements.items()
    ]
    print(
        markdown_table(
            ["scored by", "corrupted kept (rows)", "clean kept (rows)", "corrupted in Q2", "clean in Q2"], rows
        )
    )


if __name__ == "__main__":
    main()
