"""CHORD's small-scale demonstration (arXiv 2508.11408) on builtin:arith with SmolLM2-135M-Instruct, against plain GRPO
on the same prompts, reward, steps and seed:

1. GRPO: `trl-ext train grpo` with the `chord_answer` reward (1 when the final number is right), LoRA r=16, G=4;
2. CHORD: `trl-ext train chord`, the same flags plus the expert dataset (builtin:arith's worked solutions "a op b = c.
   The answer is N.") and a mu schedule: by default the card's CHORD-mu shape (W=0, P=0.9 -> V=0.05, nll) with its
   decay D scaled to the demo's steps (the card's D=200 would keep mu near 0.9 throughout a run this short);
3. greedy evaluation on held-out problems: accuracy and the share of completions that end in the expected
   "The answer is N." format, for the base model and both arms.

    python examples/demos/chord_demo.py [--steps 15] [--eval_size 32] [--variant nll|phi|is]

Run it alone on the machine with one torch thread (OMP_NUM_THREADS=1): it prints wall time and CPU-seconds.
"""

import argparse
import json
import os
import time

import torch

from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
from trl_ext.inference import generate_completions
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--max_completion_length", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8, help="Completions per step (prompts x G=4); expert rows too.")
    parser.add_argument("--learning_rate", default="2e-4")
    parser.add_argument("--eval_size", type=int, default=32)
    parser.add_argument("--variant", default="nll", choices=["nll", "phi", "is"])
    parser.add_argument("--mu_peak", type=float, default=0.9)
    parser.add_argument("--mu_valley", type=float, default=0.05)
    parser.add_argument("--output_dir", default="outputs/chord-demo")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    start_wall, start_cpu = time.time(), cpu_seconds()

    common = dict(
        model_name_or_path=args.model,
        dataset_name="builtin:arith",
        dataset_config="grpo",
        rewards="chord_answer",
        use_peft=True,
        lora_r=16,
        lora_alpha=32,
        lora_target_modules="all-linear",
        num_generations=4,
        per_device_train_batch_size=args.batch,
        max_completion_length=args.max_completion_length,
        learning_rate=args.learning_rate,
        loss_type="bnpo",
        max_steps=args.steps,
        logging_steps=1,
    )
    arms = {"grpo": f"{args.output_dir}/grpo", "chord": f"{args.output_dir}/chord"}
    minutes = {"grpo": train_arm("grpo", arms["grpo"], **common)}
    minutes["chord"] = train_arm(
        "chord",
        arms["chord"],
        **common,
        expert_dataset_name="builtin:arith",
        sft_loss_variant=args.variant,
        mu_warmup_steps=0,
        mu_decay_steps=args.steps,
        mu_peak=args.mu_peak,
        mu_valley=args.mu_valley,
        expert_batch_size=args.batch,
    )

    tokenizer = load_tokenizer(args.model)
    test = load_dataset("builtin:arith", "grpo")["test"].select(range(args.eval_size))
    models = {"base": load_model(args.model)}
    models.update({name: load_tuned(path, base=args.model) for name, path in arms.items()})
    rows, results = [], {}
    for name, model in models.items():
        outs = generate_completions(model, tokenizer, test["prompt"], max_new_tokens=args.max_completion_length)
        accuracy = sum(is_correct(o.text, a) for o, a in zip(outs, test["answer"], strict=True)) / len(outs)
        formatted = sum("The answer is" in o.text for o in outs) / len(outs)
        results[name] = {"accuracy": accuracy, "format": formatted, "sample": outs[0].text}
        rows.append([name, f"{accuracy:.3f}", f"{formatted:.3f}", f"{minutes.get(name, 0):.1f}"])
        print(name, results[name], flush=True)
    wall, cpu = time.time() - start_wall, cpu_seconds() - start_cpu
    print(
        f"\n{args.steps} steps per arm, G=4, {args.batch} completions/step, lr {args.learning_rate}, LoRA r=16, greedy on {args.eval_size} held-out "
        f"problems, max {args.max_completion_length} tokens; CHORD {args.variant}, mu {args.mu_peak} -> "
        f"{args.mu_valley} over {args.steps} steps. Total wall {wall / 60:.1f} min, CPU {cpu:.0f} s."
    )
    print(markdown_table(["model", "accuracy", "'The answer is' format", "train min"], rows))
    print(json.dumps({"results": results, "minutes": minutes, "wall_s": wall, "cpu_s": cpu}))


if __name__ == "__main__":
    main()
