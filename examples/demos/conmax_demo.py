"""ConMax's small-scale demonstration: GRPO of SmolLM2-135M-Instruct (LoRA r=8) as a trace compressor against
`conmax_confidence` with the frozen built-in SmolLM2-135M as π_φ, on `builtin:conmax_traces` (verbose arithmetic
traces, each step verified twice), G=4. Prints, per window of steps, the mean reward, S_ans, S_think, the compression
ratio |ẑ|/|z| and the invalid fraction, then S_ans and S_think of the uncompressed traces z (the card reads the
compression ratio falling well below 1 while S_ans stays at or above its value on z).

    python examples/demos/conmax_demo.py [--max_steps 16] [--window 4]
"""

import argparse
import json
from pathlib import Path

from trl_ext.devtools.demo import markdown_table, train_arm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=16)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--max_completion_length", type=int, default=128)
    parser.add_argument("--output_dir", default="outputs/conmax-demo")
    parser.add_argument("--require_span", default="false", help="The format gate; false scores the whole output.")
    args = parser.parse_args()

    minutes = train_arm(
        "grpo",
        args.output_dir,
        dataset_name="builtin:conmax_traces",
        rewards=f"conmax_confidence:require_span={args.require_span}",
        use_peft=True,
        lora_r=8,
        lora_alpha=16,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=args.max_completion_length,
        learning_rate="2e-4",
        max_steps=args.max_steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=args.max_steps,
    )
    state = json.loads((Path(args.output_dir) / f"checkpoint-{args.max_steps}" / "trainer_state.json").read_text())
    logs = [e for e in state["log_history"] if "conmax/invalid_frac" in e]
    keys = {
        "reward": "reward",
        "S_ans": "conmax/S_ans",
        "S_think": "conmax/S_think",
        "ratio": "conmax/compression_ratio",
        "invalid": "conmax/invalid_frac",
    }
    rows = []
    for start in range(0, len(logs), args.window):
        window = logs[start : start + args.window]
        cells = []
        for key in keys.values():
            values = [e[key] for e in window if key in e]
            cells.append(f"{sum(values) / len(values):.3f}" if values else "-")
        rows.append([f"{window[0]['step']}-{window[-1]['step']}", *cells])
    print(f"\nGRPO + conmax_confidence, smollm2-135m LoRA r=8, G=4, {args.max_steps} steps, {minutes:.1f} min")
    print(markdown_table(["steps", *keys], rows))

    # The uncompressed traces z under the same scorer: the reference S_ans of the card's reading.
    from trl_ext.data import load_dataset
    from trl_ext.inference.scoring import load_scorer
    from trl_ext_plugins.conmax.config import ConMaxConfig
    from trl_ext_plugins.conmax.scoring import conmax_scores

    data = load_dataset("builtin:conmax_traces", "grpo")["train"].select(range(16))
    model, tokenizer = load_scorer("smollm2-135m")
    pairs = conmax_scores(model, tokenizer, data["query"], data["trace"], data["answer"], ConMaxConfig())
    s_ans = sum(p[0] for p in pairs) / len(pairs)
    s_think = sum(p[1] for p in pairs) / len(pairs)
    print(f"\nUncompressed traces z (16 train rows): S_ans {s_ans:.3f}, S_think {s_think:.3f}, ratio 1")


if __name__ == "__main__":
    main()
