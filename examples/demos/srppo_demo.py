"""SRPPO's small-scale demonstration (arXiv:2510.21090) on builtin:arith with SmolLM2-135M-Instruct as π_pt:

1. a short SFT of π_pt on the arith demonstrations -> π_sft;
2. from π_sft, on the same prompts and for the same steps (LoRA r=16, k=4 completions per prompt):
   - SRPPO: RLOO with the self-reward log π_sft(y|x) − log π_pt(y|x) (no labels: demonstrations only);
   - plain RLOO with the answer-correctness reward `answer_reward` below (uses the gold answers SRPPO never sees);
3. greedy evaluation on held-out problems: accuracy, the 'The answer is N.' format rate, mean completion tokens and
   the mean self-reward of the greedy completions.

    OMP_NUM_THREADS=1 python examples/demos/srppo_demo.py [--sft_steps 30] [--rl_steps 12] [--eval_size 32]

The card's scale (64 style demos, 60 RLOO steps on 256 new prompts) does not fit a 15-minute CPU budget.
"""

import argparse
import json
import re
import time

import torch

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
from trl_ext.inference import generate_completions
from trl_ext.models import load_model, load_tokenizer

ANSWER = re.compile(r"The answer is\s*(-?\d+)\.?\s*$")


def final_answer(text: str) -> str | None:
    match = ANSWER.search(text.strip())
    return match.group(1) if match else None


def answer_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when the completion ends with 'The answer is N.' and N is the gold answer (plain RLOO's labelled reward)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(final_answer(t) == str(a)) for t, a in zip(texts, answer, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sft_steps", type=int, default=30)
    parser.add_argument("--rl_steps", type=int, default=12)
    parser.add_argument("--num_generations", type=int, default=4)
    parser.add_argument("--max_completion_length", type=int, default=48)
    parser.add_argument("--eval_size", type=int, default=32)
    parser.add_argument("--output_dir", default="outputs/srppo-demo")
    parser.add_argument("--eval_only", action="store_true", help="Evaluate the arms a previous run trained.")
    parser.add_argument("--with_base", action="store_true", help="Also evaluate π_pt.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    wall, cpu = time.time(), time.process_time()

    sft_dir = f"{args.output_dir}/sft"
    if args.eval_only:
        evaluate(args, sft_dir, wall, cpu, None)
        return
    minutes = {
        "SFT": train_arm(
            "sft",
            sft_dir,
            model_name_or_path=args.model,
            dataset_name="builtin:arith",
            max_steps=args.sft_steps,
            per_device_train_batch_size=8,
            learning_rate="1e-4",
            max_length=256,
        )
    }
    rl = dict(
        model_name_or_path=sft_dir,
        dataset_name="builtin:arith",
        use_peft=True,
        lora_r=16,
        lora_alpha=32,
        num_generations=args.num_generations,
        per_device_train_batch_size=2 * args.num_generations,
        max_completion_length=args.max_completion_length,
        learning_rate="1e-4",
        max_steps=args.rl_steps,
        logging_steps=2,
    )
    minutes["SRPPO"] = train_arm("srppo", f"{args.output_dir}/srppo", base_model_name_or_path=args.model, **rl)
    minutes["RLOO"] = train_arm("rloo", f"{args.output_dir}/rloo", rewards="srppo_demo.answer_reward", **rl)

    evaluate(args, sft_dir, wall, cpu, minutes)


def evaluate(args, sft_dir: str, wall: float, cpu: float, minutes: dict[str, float] | None) -> None:
    from trl_ext_plugins.srppo import SelfRewardLogRatio

    tokenizer = load_tokenizer(sft_dir)
    test = load_dataset("builtin:arith", form="grpo")["test"].select(range(args.eval_size))
    prompts, golds = list(test["prompt"]), list(test["answer"])  # lists, as TRL passes them
    self_reward = SelfRewardLogRatio.from_options(sft_model_name_or_path=sft_dir, base_model_name_or_path=args.model)
    models = {
        "SFT": lambda: load_model(sft_dir),
        "SFT + SRPPO": lambda: load_tuned(f"{args.output_dir}/srppo", base=sft_dir),
        "SFT + RLOO (answer reward)": lambda: load_tuned(f"{args.output_dir}/rloo", base=sft_dir),
    }
    if args.with_base:
        models = {"π_pt (base)": lambda: load_model(args.model), **models}
    rows, results = [], {}
    for name, load in models.items():
        outs = generate_completions(load(), tokenizer, prompts, max_new_tokens=args.max_completion_length)
        answers = [final_answer(o.text) for o in outs]
        rewards = self_reward(prompts=prompts, completions=[o.text for o in outs])
        results[name] = {
            "accuracy": sum(a == g for a, g in zip(answers, golds, strict=True)) / len(outs),
            "format": sum(a is not None for a in answers) / len(outs),
            "tokens": sum(o.num_tokens for o in outs) / len(outs),
            "self_reward": sum(rewards) / len(rewards),
        }
        r = results[name]
        rows.append(
            [name, f"{r['accuracy']:.3f}", f"{r['format']:.3f}", f"{r['tokens']:.1f}", f"{r['self_reward']:.2f}"]
        )
        print(name, json.dumps(r), flush=True)
    wall, cpu = time.time() - wall, time.process_time() - cpu
    if minutes is not None:
        print(
            f"\nSFT {args.sft_steps} steps x 8 ({minutes['SFT']:.1f} min); SRPPO and RLOO {args.rl_steps} steps x "
            f"{2 * args.num_generations} completions (k={args.num_generations}, LoRA r=16, lr 1e-4): SRPPO "
            f"{minutes['SRPPO']:.1f} min, RLOO {minutes['RLOO']:.1f} min; greedy on {args.eval_size} held-out problems, "
            f"max {args.max_completion_length} tokens."
        )
    print(f"Wall {wall / 60:.1f} min, CPU {cpu:.0f} s (this process).")
    print(markdown_table(["model", "accuracy", "format", "tokens", "self-reward (nats)"], rows))


if __name__ == "__main__":
    main()
