"""Think2SQL's small-scale demonstration: GRPO with the QATCH execution reward and the format reward (0.95 / 0.05, the
card's weights) on `builtin:text2sql`'s 40 training questions, SmolLM2-135M-Instruct, full fine-tuning. Prints the
training curve per window of steps (QATCH, EX, format, SQL error rate) and greedy execution accuracy on the 20
held-out questions before and after, to read the card's expected direction (EX rises).

    python examples/demos/think2sql_demo.py [--max_steps 12] [--window 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from trl_ext import get
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.inference import generate
from trl_ext.models import load_model, load_tokenizer


def held_out_ex(model_path: str, tokenizer_path: str, test, max_new_tokens: int) -> tuple[float, float]:
    """Greedy EX and format rate on the held-out questions, scored by the plugin's own rewards."""
    completions = generate(
        load_model(model_path), load_tokenizer(tokenizer_path), test["prompt"], max_new_tokens=max_new_tokens
    )
    columns = {"target_sql": test["target_sql"], "db_id": test["db_id"]}
    ex = asyncio.run(get("reward", "think2sql_ex").build()(prompts=test["prompt"], completions=completions, **columns))
    fmt = get("reward", "think2sql_format").build()(prompts=test["prompt"], completions=completions)
    return sum(x or 0.0 for x in ex) / len(ex), sum(fmt) / len(fmt)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=12)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--num_generations", type=int, default=4)
    parser.add_argument("--max_completion_length", type=int, default=96)
    parser.add_argument("--learning_rate", default="1e-5")
    parser.add_argument("--output_dir", default="outputs/think2sql-demo")
    args = parser.parse_args()

    test = get("dataset", "text2sql").build()["test"]
    before = held_out_ex("smollm2-135m", "smollm2-135m", test, args.max_completion_length)
    minutes = train_arm(
        "grpo",
        args.output_dir,
        model_name_or_path="smollm2-135m",
        dataset_name="builtin:text2sql",
        rewards="think2sql_qatch,think2sql_format",
        reward_weights=[0.95, 0.05],
        loss_type="dapo",
        beta=0.0,
        epsilon_high=0.28,
        num_generations=args.num_generations,
        per_device_train_batch_size=args.num_generations * 2,
        max_completion_length=args.max_completion_length,
        learning_rate=args.learning_rate,
        max_steps=args.max_steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=args.max_steps,
    )
    checkpoint = Path(args.output_dir) / f"checkpoint-{args.max_steps}"
    logs = [e for e in json.loads((checkpoint / "trainer_state.json").read_text())["log_history"] if "sql/ex" in e]
    keys = {
        "QATCH": "rewards/think2sql_qatch/mean",
        "EX": "sql/ex",
        "format": "rewards/think2sql_format/mean",
        "SQL error rate": "sql/exec_error_rate",
    }
    rows = []
    for start in range(0, len(logs), args.window):
        window = logs[start : start + args.window]
        means = [sum(e.get(v, 0.0) for e in window) / len(window) for v in keys.values()]
        rows.append([f"{window[0]['step']}-{window[-1]['step']}", *(f"{m:.2f}" for m in means)])
    after = held_out_ex(str(checkpoint), str(checkpoint), test, args.max_completion_length)

    print(
        f"\nGRPO, think2sql_qatch 0.95 + think2sql_format 0.05, smollm2-135m, G={args.num_generations}, "
        f"{args.max_steps} steps ({minutes:.1f} min)"
    )
    print(markdown_table(["steps", *keys], rows))
    print()
    print(
        markdown_table(
            ["model", "held-out EX (20)", "held-out format"],
            [["before", f"{before[0]:.2f}", f"{before[1]:.2f}"], ["after", f"{after[0]:.2f}", f"{after[1]:.2f}"]],
        )
    )


if __name__ == "__main__":
    main()
