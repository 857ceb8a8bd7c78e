"""VLA-OPD's small-scale demonstration (arXiv 2603.26666), on builtin:arith with SmolLM2-135M-Instruct:

1. teacher: the built-in model fine-tuned briefly by SFT on builtin:arith's worked solutions ("... The answer is N.");
2. student A (VLA-OPD): the base model distilled on-policy from that teacher (reverse KL, no reward, no labels);
3. student B (plain GRPO): the base model trained with a task reward (1 for the right answer, 0.1 for the format
   alone) on the same prompts, steps, learning rate and completions per step (OPD: `batch` prompts x 1 completion;
   GRPO: 1 prompt x `batch` completions, GRPO needs a group);
4. greedy evaluation on held-out problems: format rate ("The answer is N." present), accuracy, mean length; the
   base model and the teacher as references. Wall time and CPU-seconds per stage.

    python examples/demos/vla_opd_demo.py [--sft_steps 30] [--sft_batch 8] [--steps 12] [--batch 4] [--eval_size 24]

Run it alone on the machine with one torch thread (OMP_NUM_THREADS=1); the figures in the README came from a machine
shared with other jobs, so wall times are upper bounds.
"""

import argparse
import os
import re
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from trl_ext.data import load_dataset  # noqa: E402
from trl_ext.devtools.demo import markdown_table, train_arm  # noqa: E402
from trl_ext.inference import generate_completions  # noqa: E402
from trl_ext.models import load_model, load_tokenizer  # noqa: E402
from trl_ext.training.cost import cpu_seconds  # noqa: E402

ANSWER = re.compile(r"The answer is (-?\d+)")


def arith_answer_reward(completions, answer, **kwargs):
    """1 for the right final answer ('The answer is N'), 0.1 for the format with a wrong number, else 0."""
    rewards = []
    for completion, gold in zip(completions, answer, strict=True):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        found = ANSWER.findall(text)
        rewards.append(0.0 if not found else 1.0 if found[-1] == str(gold) else 0.1)
    return rewards


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sft_steps", type=int, default=30)
    parser.add_argument("--sft_batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4, help="completions per step in both arms (GRPO: 1 prompt x G)")
    parser.add_argument("--learning_rate", default="1e-5")
    parser.add_argument("--max_completion_length", type=int, default=40)
    parser.add_argument("--eval_size", type=int, default=24)
    parser.add_argument("--output_dir", default="outputs/vla-opd-demo")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.output_dir
    common = dict(model_name_or_path=args.model, dataset_name="builtin:arith", logging_steps=4)
    arms = dict(
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        max_completion_length=args.max_completion_length,
        per_device_train_batch_size=args.batch,
        gradient_checkpointing=False,
    )
    cost = {}

    def measured(name, run):
        wall, cpu = time.time(), cpu_seconds()
        result = run()
        cost[name] = ((time.time() - wall) / 60, cpu_seconds() - cpu)
        return result

    measured(
        "teacher SFT",
        lambda: train_arm(
            "sft",
            f"{out}/teacher",
            **common,
            max_steps=args.sft_steps,
            learning_rate="1e-4",
            per_device_train_batch_size=args.sft_batch,
            gradient_checkpointing=False,
        ),
    )
    measured(
        "VLA-OPD",
        lambda: train_arm("vla_opd", f"{out}/vla_opd", **common, **arms, teacher_model_name_or_path=f"{out}/teacher"),
    )
    measured(
        "GRPO",
        lambda: train_arm(
            "grpo",
            f"{out}/grpo",
            **common,
            **arms,
            num_generations=args.batch,
            reward_funcs="vla_opd_demo.arith_answer_reward",
        ),
    )

    tokenizer = load_tokenizer(args.model)
    test = load_dataset("builtin:arith", "grpo")["test"].select(range(args.eval_size))
    rows = []
    for name, path in [
        ("base (student before)", args.model),
        ("teacher (SFT)", f"{out}/teacher"),
        ("VLA-OPD student", f"{out}/vla_opd"),
        ("GRPO student", f"{out}/grpo"),
    ]:
        model = load_model(path)
        outs = generate_completions(model, tokenizer, test["prompt"], max_new_tokens=args.max_completion_length)
        found = [ANSWER.findall(o.text) for o in outs]
        fmt = sum(bool(f) for f in found) / len(outs)
        acc = sum(bool(f) and f[-1] == str(a) for f, a in zip(found, test["answer"], strict=True)) / len(outs)
        length = sum(o.num_tokens for o in outs) / len(outs)
        rows.append([name, f"{fmt:.2f}", f"{acc:.2f}", f"{length:.1f}"])
        del model
    print(
        f"\n{args.eval_size} held-out builtin:arith problems, greedy, {args.max_completion_length} new tokens at most"
    )
    print(markdown_table(["model", "format rate", "accuracy", "mean tokens"], rows))
    print()
    print(
        markdown_table(
            ["stage", "wall (min)", "CPU-seconds"], [[k, f"{w:.1f}", f"{c:.0f}"] for k, (w, c) in cost.items()]
        )
    )


if __name__ == "__main__":
    main()
