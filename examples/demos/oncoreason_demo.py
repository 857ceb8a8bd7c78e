"""OncoReason's small-scale demonstration on the synthetic cohort `builtin:oncoreason` (no real patients):
SmolLM2-135M-Instruct trained with plain SFT (answer lines only) and with SFT+CoT (rationale, then answer lines), then
GRPO from the SFT+CoT model with the four onco_* rewards (R = 0.25 fmt + 1.0 cls + 0.5 reg + 0.5 rat). Prints
macro-F1, accuracy, MAE (all rows with a months line, and uncensored rows only), parse rates and the rationale's
ROUGE-L on held-out cases for each arm, and the GRPO reward curve per window of steps.

    python examples/demos/oncoreason_demo.py [--sft_steps 20] [--grpo_steps 10] [--eval_cases 20]

The card's full setting (1 SFT epoch per arm, 30 GRPO steps, 100 held-out cases) is --sft_steps 100
--per_device_train_batch_size 4 --grpo_steps 30 --eval_cases 100.
"""

import argparse
import json
from pathlib import Path

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm

REWARDS = "onco_format_reward,onco_status_reward,onco_months_reward,onco_rationale_reward"
WEIGHTS = [0.25, 1.0, 0.5, 0.5]


def evaluate(model_dir: str, form: str, cases: int, max_new_tokens: int) -> dict:
    """Greedy answers of the model in `model_dir` on the first `cases` held-out cases, prompted in `form`'s way."""
    from trl_ext.inference.generation import generate
    from trl_ext.models import load_model, load_tokenizer
    from trl_ext_plugins.oncoreason.callbacks import score_answers

    rows = [dict(row) for row in load_dataset("builtin:oncoreason", form=form)["test"].select(range(cases))]
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    texts = generate(model, tokenizer, [row["prompt"] for row in rows], max_new_tokens, batch_size=10, progress=False)
    return score_answers(texts, rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sft_steps", type=int, default=20)
    parser.add_argument("--per_device_train_batch_size", type=int, default=4)
    parser.add_argument("--grpo_steps", type=int, default=10)
    parser.add_argument("--eval_cases", type=int, default=20)
    parser.add_argument("--max_new_tokens", type=int, default=160)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--output_dir", default="outputs/oncoreason-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)

    sft = {
        "dataset_name": "builtin:oncoreason",
        "learning_rate": "1e-4",  # the official SFT learning rate
        "max_length": 512,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "max_steps": args.sft_steps,
    }
    minutes = {
        "SFT": train_arm("sft", out / "sft", dataset_config="sft_plain", **sft),
        "SFT+CoT": train_arm("sft", out / "sft_cot", dataset_config="sft", **sft),
    }
    minutes["SFT+CoT → GRPO"] = train_arm(
        "grpo",
        out / "grpo",
        model_name_or_path=str(out / "sft_cot"),
        dataset_name="builtin:oncoreason",
        rewards=REWARDS,
        reward_weights=WEIGHTS,
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        learning_rate="1e-6",
        log_completions=False,
        max_steps=args.grpo_steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=args.grpo_steps,
    )
    figures = {
        "SFT": evaluate(str(out / "sft"), "sft_plain", args.eval_cases, args.max_new_tokens),
        "SFT+CoT": evaluate(str(out / "sft_cot"), "grpo", args.eval_cases, args.max_new_tokens),
        "SFT+CoT → GRPO": evaluate(str(out / "grpo"), "grpo", args.eval_cases, args.max_new_tokens),
    }
    print(
        f"\nsmollm2-135m, builtin:oncoreason, {args.eval_cases} held-out cases, greedy, {args.max_new_tokens} tokens"
    )
    header = ["arm", "macro-F1", "accuracy", "status parsed", "MAE", "MAE uncensored", "ROUGE-L", "train min"]
    rows = []
    for arm, f in figures.items():
        rows.append(
            [
                arm,
                f"{f['macro_f1']:.3f}",
                f"{f['accuracy']:.2f}",
                f"{f['status_parse_rate']:.2f}",
                f"{f['mae']:.1f}" if "mae" in f else "–",
                f"{f['mae_uncensored']:.1f}" if "mae_uncensored" in f else "–",
                f"{f['rougeL']:.3f}" if "rougeL" in f and arm != "SFT" else "–",
                f"{minutes[arm]:.1f}",
            ]
        )
    print(markdown_table(header, rows))

    state = json.loads((out / "grpo" / f"checkpoint-{args.grpo_steps}" / "trainer_state.json").read_text())
    logs = [e for e in state["log_history"] if "reward" in e]
    keys = {
        "reward": "reward",
        "format": "rewards/onco_format_reward/mean",
        "status": "rewards/onco_status_reward/mean",
        "months": "rewards/onco_months_reward/mean",
        "rougeL": "rewards/onco_rationale_reward/mean",
    }
    print(f"\nGRPO from SFT+CoT, G=4, {args.grpo_steps} steps: reward per window of {args.window} steps")
    curve = []
    for start in range(0, len(logs), args.window):
        window = logs[start : start + args.window]
        means = [sum(e.get(v, 0.0) for e in window) / len(window) for v in keys.values()]
        curve.append([f"{window[0]['step']}-{window[-1]['step']}", *(f"{m:.3f}" for m in means)])
    print(markdown_table(["steps", *keys], curve))


if __name__ == "__main__":
    main()
