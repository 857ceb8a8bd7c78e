"""RoSTE's small-scale demonstration (card): SmolLM2-135M-Instruct fine-tuned on builtin:arith, three arms with the
same data, steps and learning rate, all read at W4A4KV4:
  (a) plain SFT, then round-to-nearest quantisation (no rotation): SFT-then-PTQ;
  (b) quantisation-aware SFT with the STE, no rotation (`roste --rotate_r1 false --search_sites none`);
  (c) RoSTE (rotations + search + STE, its defaults).
Metric: held-out completion NLL with the W4A4KV4 fake quantisers on (token mean, SFTTrainer's eval_loss), and the mean
activation quantisation error (roste/a_qerr) on the same rows. The card expects (c) < (b) < (a) and a lower a_qerr
in (c). The base model's NLL in full precision and at W4A4KV4 (RTN) is printed for scale.

    OMP_NUM_THREADS=1 python examples/demos/roste_demo.py [--max_steps 30] [--eval_size 64]
"""

import argparse
import time

import torch
from trl import SFTConfig, SFTTrainer

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.roste import RoSTESpec, apply_roste, load_roste_model

RTN = RoSTESpec(rotate_r1=False, search_sites=())  # W4A4KV4, no rotation


def eval_nll(model, tokenizer, dataset, output_dir: str):
    """(token-mean completion NLL, the trainer that measured it)."""
    args = SFTConfig(output_dir=output_dir, per_device_eval_batch_size=16, report_to="none", bf16=False,
                     max_length=256, use_cpu=True)  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset,
                         processing_class=tokenizer)  # fmt: skip
    return trainer.evaluate()["eval_loss"], trainer


def activation_error(model, trainer) -> float:
    """roste/a_qerr on the eval rows: a forward in train mode (no dropout in Llama) records the quantisers' error."""
    model.roste_stats.reset()
    model.train()
    with torch.no_grad():
        for batch in trainer.get_eval_dataloader():
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    model.eval()
    return model.roste_stats.means()["roste/a_qerr"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=30)
    parser.add_argument("--eval_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=2e-5)
    parser.add_argument("--output_dir", default="outputs/roste-demo")
    cli = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = load_tokenizer("smollm2-135m")
    held_out = load_dataset("builtin:arith")["test"].select(range(cli.eval_size))
    flags = dict(model_name_or_path="smollm2-135m", dataset_name="builtin:arith", max_steps=cli.max_steps,
                 per_device_train_batch_size=8, learning_rate=cli.learning_rate, max_length=256,
                 gradient_checkpointing=False, use_cpu=True, bf16=False)  # fmt: skip
    rows = []

    base = load_model("smollm2-135m", dtype=torch.float32)
    nll_fp, _ = eval_nll(base, tokenizer, held_out, f"{cli.output_dir}/eval")
    apply_roste(base, RTN, rotation_config={})
    nll_q, trainer = eval_nll(base, tokenizer, held_out, f"{cli.output_dir}/eval")
    rows.append([f"base model, no training (fp NLL {nll_fp:.3f})", "-", f"{nll_q:.3f}",
                 f"{activation_error(base, trainer):.4f}", "-"])  # fmt: skip

    arms = [
        ("(a) SFT, then RTN W4A4KV4", "sft", {}),
        ("(b) QA-SFT (STE), no rotation", "roste", {"rotate_r1": False, "search_sites": "none"}),
        ("(c) RoSTE", "roste", {}),
    ]
    for name, method, extra in arms:
        folder = f"{cli.output_dir}/{method}-{len(rows)}"
        start = time.process_time()
        minutes = train_arm(method, folder, **flags, **extra)
        cpu = time.process_time() - start
        if method == "sft":
            model = load_model(folder, dtype=torch.float32)
            apply_roste(model, RTN, rotation_config={})
        else:
            model = load_roste_model(folder, dtype=torch.float32)
        nll, trainer = eval_nll(model, tokenizer, held_out, f"{cli.output_dir}/eval")
        counts = sum(sum(s.values()) for s in model.roste_rotation_config.values())
        rows.append([name, f"{minutes:.1f} min / {cpu:.0f} CPU-s", f"{nll:.3f}",
                     f"{activation_error(model, trainer):.4f}", str(counts)])  # fmt: skip
    header = ["arm", "train wall / CPU", "held-out NLL at W4A4KV4", "a_qerr (eval rows)", "R2+R4 sites on"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
