"""TLDR's small-scale demonstration (arXiv:2505.07961), on builtin:tldr_arith with SmolLM2-135M-Instruct:

1. a short "long-CoT" SFT: the sft form's <think> traces (of varying length, no length levels in the prompts);
2. TLDR: GRPO from the SFT model with `tldr_length_regularized_reward` on prompts that request short, medium or long
   reasoning (LoRA r=16, G=4, loss_type dr_grpo as the card recommends);
3. evaluation with `trl_ext.inference.generate_completions` (greedy) on held-out problems, every prompt asked at each
   level: mean completion tokens and accuracy per level, SFT model against TLDR model (expected: short < medium <
   long after TLDR, accuracy within a few points of SFT);
4. temperature scaling on the SFT model: τ_stop in {0.5, 1, 2} through `think_stop_temperature` (expected: length
   decreases as τ_stop decreases).

    python examples/demos/tldr_demo.py [--sft_steps 40] [--grpo_steps 20] [--eval_size 24]
    python examples/demos/tldr_demo.py --ts_only [--model M] [--eval_size 12]   # step 4 alone, no training

The card's scale: 200 SFT examples, GRPO 40 steps, G=4, max_completion_length 192.
"""

import argparse
import json

from trl_ext import get
from trl_ext.data import load_dataset
from trl_ext.devtools.demo import load_tuned, markdown_table, train_arm
from trl_ext.inference import generate_completions
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.tldr.rewards import verify_boxed

LEVELS = ("short", "medium", "long")
TAUS = (0.5, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sft_steps", type=int, default=40)
    parser.add_argument("--sft_learning_rate", default="1e-4")
    parser.add_argument("--grpo_steps", type=int, default=20)
    parser.add_argument("--max_completion_length", type=int, default=160)
    parser.add_argument("--eval_size", type=int, default=24)
    parser.add_argument("--output_dir", default="outputs/tldr-demo")
    parser.add_argument(
        "--ts_only", action="store_true", help="Only the temperature-scaling sweep, on --model (no training)."
    )
    args = parser.parse_args()
    L = args.max_completion_length
    tokenizer = load_tokenizer(args.model)
    # The held-out problems without a level line (the sft form's prompts), asked at each level by the transform.
    test = load_dataset("builtin:tldr_arith", "sft")["test"].select(range(args.eval_size)).remove_columns("completion")

    def read(model, prompts, processors=None) -> tuple[float, float, float]:
        """Mean completion tokens, mean thinking tokens (before '</think>', all of them without one), accuracy."""
        outs = generate_completions(model, tokenizer, prompts, max_new_tokens=L, logits_processors=processors)
        length = sum(o.num_tokens for o in outs) / len(outs)
        thinking = sum(_thinking_tokens(tokenizer, o) for o in outs) / len(outs)
        accuracy = sum(verify_boxed(o.text, a) for o, a in zip(outs, test["answer"], strict=True)) / len(outs)
        return length, thinking, accuracy

    if args.ts_only:
        _ts_sweep(load_model(args.model), args.model, test, tokenizer, read)
        return

    sft_dir, grpo_dir = f"{args.output_dir}/sft", f"{args.output_dir}/tldr"
    minutes = {}
    minutes["sft"] = train_arm(
        "sft",
        sft_dir,
        model_name_or_path=args.model,
        dataset_name="builtin:tldr_arith",
        dataset_config="sft",
        max_steps=args.sft_steps,
        per_device_train_batch_size=8,
        learning_rate=args.sft_learning_rate,
        logging_steps=1,
    )
    minutes["tldr"] = train_arm(
        "grpo",
        grpo_dir,
        model_name_or_path=sft_dir,
        dataset_name="builtin:tldr_arith",
        dataset_config="grpo",
        rewards=f"tldr_length_regularized_reward:max_completion_length={L}:eos_token_ids=2",
        loss_type="dr_grpo",
        use_peft=True,
        lora_r=16,
        lora_alpha=32,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=L,
        learning_rate="1e-4",
        max_steps=args.grpo_steps,
        logging_steps=1,
    )

    models = {"SFT": load_model(sft_dir), "TLDR": load_tuned(grpo_dir, base=sft_dir)}
    rows, results = [], {}
    for name, model in models.items():
        for level in LEVELS:
            prompts = get("transform", "add_length_levels").build(level=level)(test)["prompt"]
            results[(name, level)] = read(model, prompts)
            print(name, level, results[(name, level)], flush=True)
        rows.append(
            [name]
            + [f"{results[(name, lv)][0]:.1f}" for lv in LEVELS]
            + [f"{results[(name, lv)][2]:.2f}" for lv in LEVELS]
        )
    print(
        f"\nSFT {args.sft_steps} steps ({minutes['sft']:.1f} min), TLDR GRPO {args.grpo_steps} steps "
        f"({minutes['tldr']:.1f} min), greedy on {args.eval_size} held-out problems per level, max {L} tokens"
    )
    header = ["model", *(f"tokens {lv}" for lv in LEVELS), *(f"acc {lv}" for lv in LEVELS)]
    print(markdown_table(header, rows))

    _ts_sweep(models["SFT"], "the SFT model", test, tokenizer, read)
    print(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}))


def _ts_sweep(model, name, test, tokenizer, read) -> None:
    processor = get("logits_processor", "think_stop_temperature")
    rows = []
    for tau in TAUS:
        length, thinking, accuracy = read(
            model, test["prompt"], lambda tau=tau: [processor.build(tokenizer=tokenizer, tau_stop=tau)]
        )
        rows.append([tau, f"{thinking:.1f}", f"{length:.1f}", f"{accuracy:.2f}"])
        print("TS", tau, thinking, length, accuracy, flush=True)
    print(f"\nTemperature scaling of '</think>' on {name} (prompts without a level), greedy, {len(test)} problems")
    print(markdown_table(["τ_stop", "thinking tokens", "completion tokens", "accuracy"], rows))


def _thinking_tokens(tokenizer, generation) -> int:
    head, found, _ = generation.text.partition("</think>")
    return len(tokenizer(head, add_special_tokens=False)["input_ids"]) if found else generation.num_tokens


if __name__ == "__main__":
    main()
