"""The `make demo` run: a short ASFT fine-tune of the built-in SmolLM2-135M-Instruct on builtin:arith, with exact-match
accuracy and completion loss on the held-out split before and after.

    python examples/demo.py [--method asft] [--max_steps 60] [--eval_size 100]
"""

import argparse

from trl_ext.data import load_dataset
from trl_ext.data.arith import is_correct
from trl_ext.devtools.demo import train_arm
from trl_ext.evaluation import completion_nll, exact_match
from trl_ext.models import load_model, load_tokenizer


def figures(model_path: str, eval_set) -> tuple[float, float]:
    model, tokenizer = load_model(model_path), load_tokenizer(model_path)
    return exact_match(model, tokenizer, eval_set, is_correct), completion_nll(model, tokenizer, eval_set)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="asft")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max_steps", type=int, default=60)
    parser.add_argument("--eval_size", type=int, default=100)
    parser.add_argument("--output_dir", default="outputs/demo-asft")
    args = parser.parse_args()

    eval_set = load_dataset("builtin:arith", form="sft")["test"].select(range(args.eval_size))
    acc0, nll0 = figures(args.model, eval_set)
    minutes = train_arm(
        args.method,
        args.output_dir,
        model_name_or_path=args.model,
        dataset_name="builtin:arith",
        max_steps=args.max_steps,
        per_device_train_batch_size=8,
        learning_rate="5e-5",
        max_length=256,
        seed=42,  # TrainingArguments' default, with which the README's figures were measured
    )
    acc1, nll1 = figures(args.output_dir, eval_set)
    print(
        f"\n{args.method} on builtin:arith, {args.model}, {args.max_steps} steps x 8 ({minutes:.1f} min); "
        f"eval: {args.eval_size} held-out problems"
    )
    print(f"{'':<8}{'exact match':>12}{'completion NLL':>16}")
    print(f"{'before':<8}{acc0:>12.1%}{nll0:>16.3f}")
    print(f"{'after':<8}{acc1:>12.1%}{nll1:>16.3f}")


if __name__ == "__main__":
    main()
