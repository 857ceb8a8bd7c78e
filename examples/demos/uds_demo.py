"""The UDS card's small-scale demonstration (shared/papers/uds.md), scaled down: SmolLM2-135M-Instruct + LoRA r=8 on
a mixed instruction set where half the rows are near-duplicates of one template (a greeting with a changing number)
and half are builtin:arith problems; micro-batch b=8, K=2. Arms at the same number of optimizer steps: full data
(plain SFT on all 8 rows), random-K (`--uds_random`) and UDS. Read: token-mean NLL on held-out arith problems (the
non-duplicate half; the card expects UDS < random-K) and the wall time per arm (the card expects UDS below full
data, since the backward runs on K/b of the rows).

    python examples/demos/uds_demo.py [--train_size 400] [--max_steps 20] [--eval_size 60]
    python examples/demos/uds_demo.py --train_size 32 --max_steps 2 --eval_size 4   # smoke test
"""

import argparse
import json
from pathlib import Path

from datasets import Dataset

from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
from trl_ext.evaluation import completion_nll
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.uds.data import DUPLICATE_MARKER
from trl_ext_plugins.uds.data import build as build_mix

BASE = "smollm2-135m"


def duplicate_share(folder: Path, mixed: Dataset, tokenizer, args) -> tuple[float, float]:
    """(share of near-duplicates among the rows UDS selected, share among all candidate rows), from the selections
    saved in the UDS arm's last checkpoint (positions within each micro-batch) and the same training batches,
    replayed from a trainer with the run's seed, data and batch size."""
    import torch

    from trl_ext_plugins.uds import UDSConfig, UDSSFTTrainer
    from trl_ext_plugins.uds.trainer import STATE_FILE

    state = torch.load(folder / f"checkpoint-{args.max_steps}" / STATE_FILE.format(rank=0), weights_only=True)
    config = UDSConfig(
        output_dir=str(folder / "replay"),
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        seed=0,
        bf16=False,
        report_to="none",
        gradient_checkpointing=False,
    )
    trainer = UDSSFTTrainer(model=load_model(BASE), args=config, train_dataset=mixed, processing_class=tokenizer)
    batches = iter(trainer.get_train_dataloader())
    chosen = candidates = 0
    n_chosen = n_candidates = 0
    for _step, _micro, rows in state["history"]:
        texts = tokenizer.batch_decode(next(batches)["input_ids"])
        dup = [DUPLICATE_MARKER in t for t in texts]
        chosen += sum(dup[i] for i in rows)
        candidates += sum(dup)
        n_chosen += len(rows)
        n_candidates += len(dup)
    return chosen / max(n_chosen, 1), candidates / max(n_candidates, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_size", type=int, default=400, help="rows in all, half of them near-duplicates")
    parser.add_argument("--max_steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--eval_size", type=int, default=60)
    parser.add_argument("--arms", default="full,random,uds", help="which arms to train (comma-separated)")
    parser.add_argument("--output_dir", default="outputs/demo-uds")
    args = parser.parse_args()

    out = Path(args.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    data = build_mix(n_rows=args.train_size)  # builtin:uds_mix at the requested size
    mixed = data["train"].select_columns(["prompt", "completion"])
    train_file = out / "data" / "train.jsonl"
    mixed.to_json(str(train_file), lines=True)
    held_out = data["test"].select(range(args.eval_size)).select_columns(["prompt", "completion"])

    tokenizer = load_tokenizer(BASE)
    results = {"base": {"held_out_nll": completion_nll(load_model(BASE), tokenizer, held_out)}}
    common = dict(
        model_name_or_path=BASE,
        dataset_name=str(train_file),
        use_peft=True,
        lora_r=8,
        lora_alpha=16,
        lora_target_modules="all-linear",
        learning_rate="1.5e-4",
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        max_length=256,
        gradient_checkpointing=False,
        logging_steps=5,
    )
    k = ["--uds_k", str(args.k)]
    save = ["--save_strategy", "steps", "--save_steps", str(args.max_steps)]  # UDS: keep its selections
    arms = (
        ("full data (sft)", "sft", []),
        ("random-K", "uds", [*k, "--uds_random", "true"]),
        ("UDS", "uds", [*k, *save]),
    )
    wanted = {a.strip().lower() for a in args.arms.split(",")}
    for name, method, extra in arms:
        if name.split()[0].lower().removesuffix("-k") not in wanted:
            continue
        folder = out / name.split()[0].lower()
        minutes = train_arm(method, folder, extra, **common)
        results[name] = {
            "held_out_nll": completion_nll(load_tuned(folder, BASE), tokenizer, held_out),
            "train_minutes": minutes,
        }
        if name == "UDS":
            selected, candidates = duplicate_share(folder, mixed, tokenizer, args)
            results[name]["duplicate_share_selected"] = selected
            results[name]["duplicate_share_candidates"] = candidates
        print(name, json.dumps(results[name]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))

    print(
        f"\nUDS demo: {BASE} + LoRA r=8, {args.train_size} rows (half near-duplicates of one template), b="
        f"{args.batch_size}, K={args.k}, {args.max_steps} optimizer steps, lr 1.5e-4. NLL on {args.eval_size} "
        "held-out arith problems.\n"
    )
    rows = [
        [name, f"{r['held_out_nll']:.3f}", f"{r['train_minutes']:.2f}" if "train_minutes" in r else "-"]
        for name, r in results.items()
    ]
    print(markdown_table(["arm", "held-out NLL", "train min"], rows))
    uds = results.get("UDS", {})
    if uds:
        print(
            f"\nUDS selected near-duplicates in {uds['duplicate_share_selected']:.1%} of its picks; they were "
            f"{uds['duplicate_share_candidates']:.1%} of the candidates."
        )


if __name__ == "__main__":
    main()
