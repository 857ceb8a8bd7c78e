"""LocFT-BF's small-scale demonstration (shared/papers/locft-bf.md), scaled down for a CPU: SmolLM2-135M-Instruct
edited with counterfactual requests "The capital of <invented country> is" -> "<invented city>" (builtin:locft_edits),
four arms on the same requests:
  (a) the base model, no edit (the floor; its locality is 1 by definition);
  (b) depth-first FT of the same one tensor: request after request, `--df_steps` steps each (a fresh Adam per
      request, the same skip rule: a step whose loss is < 1e-2 is not taken, and with one request per epoch the epoch
      early stop ends that request there, which changes nothing since every later step would be skipped), as the
      sequential editing pipelines the paper argues against;
  (c) plain breadth-first full fine-tuning (`trl-ext train sft`: all parameters, TRL's token-mean loss), the same
      batches, epochs, constant lr without warm-up or clipping (lr `--ft_lr`, default 5e-5: the official code's
      default; 5e-4 on every parameter is the harsher setting);
  (d) LocFT-BF (`trl-ext train locft_bf`): breadth-first, one MLP down_proj (layer 6 = round(0.2 * 30)), lr 5e-4.
Metrics (the official evaluation, plugins/locft_bf/evaluation.py): reliability = SQuAD exact match of the greedy
answer (at most 32 new tokens) to the new target on the edit prompt; generalisation = the same on the paraphrase
("<country>'s capital city is"); locality = share of unrelated real-fact prompts whose greedy answer is unchanged
from the base model's. The card expects (d) above (b) in reliability after all edits and (d) above (b) and (c) in
locality (one tensor keeps unrelated answers where tuning all layers does not).

The breadth-first arms (a), (c) and (d) are `trl-ext compare --config examples/compare/locft_bf_edits.yaml` (the
three figures through `exact_match:prompt_column=...` and `unchanged`); this script remains for the depth-first arm
(b), one request after another with a fresh optimiser each, which is not a registered method.

Card's full scale: 200 edits, 100 locality prompts, batch 50, 25 epochs (depth-first: 25 steps per request).
Here by default: 32 edits in 4 batches of 8 per epoch (the card: 4 batches of 50), 25 epochs, 20 locality prompts
(the built-in set's 20 real facts, each once), depth-first 25 steps per request: about 15 CPU-minutes on one thread.
`--n_edits 200 --batch_size 50` is the card's edit count (roughly 6x the CPU time).

    OMP_NUM_THREADS=1 python examples/demos/locft_bf_demo.py [--n_edits 32] [--batch_size 8] [--epochs 25]
    OMP_NUM_THREADS=1 python examples/demos/locft_bf_demo.py --n_edits 4 --batch_size 2 --epochs 1 --df_steps 1 \
        --max_new_tokens 8 --output_dir /tmp/locft_bf-smoke       # smoke test
"""

import argparse
import json
import time
from pathlib import Path

import torch
from datasets import Dataset

from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds
from trl_ext_plugins.locft_bf import EditMetrics, LocFTConfig, LocFTTrainer
from trl_ext_plugins.locft_bf.data import edit_requests

BASE = "smollm2-135m"
FINISHED: list = []  # the trainers `trl-ext train` ran in this process (steps and skip counts for the table)


def record_trainers() -> None:
    """`train_arm` runs `trl-ext train` in this process without saving a trainer state (save_strategy "no"): keep
    each trainer once it has trained, to read its step count and LocFT's skip counter."""
    from transformers import Trainer

    train = Trainer.train

    def train_and_keep(self, *args, **kwargs):
        result = train(self, *args, **kwargs)
        FINISHED.append(self)
        return result

    Trainer.train = train_and_keep


def metric_rows(rows: list[dict]) -> list[dict]:
    """The requests with each distinct locality prompt kept once (the built-in set cycles 20 facts)."""
    seen, out = set(), []
    for row in rows:
        fresh = row["locality_prompt"] not in seen
        seen.add(row["locality_prompt"])
        out.append({**row, "locality_prompt": row["locality_prompt"] if fresh else None})
    return out


def depth_first(rows: list[dict], cli, folder: Path):
    """Each request to convergence in turn: one LocFTTrainer per request (1 row, batch 1, `df_steps` epochs = steps,
    the same tensor, loss, skip rule and lr as LocFT-BF), on one model object carried from request to request."""
    import datasets
    import transformers
    from transformers.trainer_callback import PrinterCallback

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    model = load_model(BASE, dtype=torch.float32)
    tokenizer = load_tokenizer(BASE)
    steps = skipped = 0
    for row in rows:
        args = LocFTConfig(
            output_dir=str(folder), per_device_train_batch_size=1, num_train_epochs=cli.df_steps,
            learning_rate=cli.lr, eval_edits=False, save_strategy="no", report_to="none", logging_steps=10_000,
            disable_tqdm=True, use_cpu=True, bf16=False, max_length=256, gradient_checkpointing=False, seed=0,
        )  # fmt: skip
        trainer = LocFTTrainer(model, args=args, train_dataset=Dataset.from_list([row]), processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # no log line per request and epoch
        trainer.train()
        steps += trainer.state.global_step
        skipped += trainer.locft_rules.skipped
        model = trainer.model
    datasets.enable_progress_bars()
    transformers.logging.set_verbosity_warning()
    return model.eval(), steps, skipped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_edits", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=8, help="requests per batch (breadth-first arms)")
    parser.add_argument("--epochs", type=int, default=25, help="breadth-first epochs")
    parser.add_argument("--df_steps", type=int, default=25, help="depth-first steps per request")
    parser.add_argument("--lr", type=float, default=5e-4, help="LocFT-BF and depth-first (one tensor)")
    parser.add_argument("--ft_lr", type=float, default=5e-5, help="plain full fine-tuning (all parameters)")
    parser.add_argument("--max_new_tokens", type=int, default=32, help="greedy answer length (official 32)")
    parser.add_argument("--arms", default="base,depth_first,full_ft,locft_bf")
    parser.add_argument("--output_dir", default="outputs/demo-locft_bf")
    cli = parser.parse_args()
    torch.set_num_threads(1)
    arms = cli.arms.split(",")

    out = Path(cli.output_dir)
    requests = edit_requests(cli.n_edits)
    rows = [{**r, "completion": " " + r["target_new"]} for r in requests]  # SFTTrainer appends the EOS
    train_file = out / "data" / "edits.jsonl"
    train_file.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_json(str(train_file), lines=True)
    tokenizer = load_tokenizer(BASE)
    metrics = EditMetrics(metric_rows(requests), max_new_tokens=cli.max_new_tokens)
    start_wall, start_cpu = time.time(), cpu_seconds()

    base = load_model(BASE, dtype=torch.float32).eval()
    metrics.locality_before = metrics._answers(base, tokenizer, metrics.locality_prompts)  # the pre-edit answers
    results = {}
    if "base" in arms:
        results["(a) base model, no edit"] = {**metrics.evaluate(base, tokenizer), "steps": 0, "trainable": 0}
    del base

    common = dict(
        model_name_or_path=BASE, dataset_name=str(train_file), num_train_epochs=cli.epochs,
        per_device_train_batch_size=cli.batch_size, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=0.0, optim="adamw_torch", max_length=256, gradient_checkpointing=False,
        logging_steps=5,
    )  # fmt: skip
    if "depth_first" in arms:
        cpu0 = cpu_seconds()
        model, steps, skipped = depth_first(rows, cli, out / "depth_first")
        cpu = cpu_seconds() - cpu0
        results["(b) depth-first FT, one down_proj"] = {
            **metrics.evaluate(model, tokenizer), "steps": steps, "skipped": skipped, "train_cpu_s": cpu,
            "trainable": model.config.hidden_size * model.config.intermediate_size,
        }  # fmt: skip
        del model
    breadth = []
    if "full_ft" in arms:
        breadth.append(("(c) plain full FT, breadth-first", "sft", "full_ft", {"learning_rate": cli.ft_lr}))
    if "locft_bf" in arms:
        breadth.append(("(d) LocFT-BF, one down_proj", "locft_bf", "locft_bf",
                        {"learning_rate": cli.lr, "eval_edits": False}))  # fmt: skip
    record_trainers()
    for name, method, key, extra in breadth:
        folder = out / key
        cpu0 = cpu_seconds()
        train_arm(method, folder, **common, **extra)
        cpu = cpu_seconds() - cpu0
        trainer = FINISHED.pop()
        rules = getattr(trainer, "locft_rules", None)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        steps, epochs = trainer.state.global_step, trainer.state.epoch
        del trainer
        model = load_tuned(folder, BASE).float().eval()
        results[name] = {
            **metrics.evaluate(model, tokenizer), "steps": steps, "epochs": epochs, "train_cpu_s": cpu,
            "skipped": rules.skipped if rules else None, "trainable": trainable,
            "epoch_mean_loss": rules.epoch_losses if rules else None,
        }  # fmt: skip
        del model

    (out / "results.json").write_text(json.dumps(results, indent=2))
    header = ["arm", "reliability EM", "generalisation EM", "locality", "steps (skipped)", "train CPU-s", "trainable"]
    table = [
        [name, f"{r['edit/reliability_em']:.3f}", f"{r.get('edit/generalization_em', float('nan')):.3f}",
         f"{r.get('edit/locality', float('nan')):.3f}",
         f"{r['steps']}" + (f" ({int(r['skipped'])})" if r.get("skipped") is not None else ""),
         f"{r['train_cpu_s']:.0f}" if "train_cpu_s" in r else "-", f"{r['trainable']:,}"]
        for name, r in results.items()
    ]  # fmt: skip
    print(markdown_table(header, table))
    print(f"\n{cli.n_edits} edits, {len(metrics.locality_prompts)} locality prompts, greedy {cli.max_new_tokens} "
          f"tokens; total {(time.time() - start_wall) / 60:.1f} min wall, {cpu_seconds() - start_cpu:.0f} CPU-s")  # fmt: skip


if __name__ == "__main__":
    main()
