"""rlhf_diversity's small-scale demonstration (arXiv:2310.06452) on SmolLM2-135M-Instruct and builtin:arith:

1. the base model, measured with `trl-ext evaluate --callbacks rlhf_diversity` (K samples of each held-out prompt at
   T=1, seeded: the same prompts and the same sampling seed for every model);
2. a short full SFT on arith's worked solutions, measured the same way;
3. a short GRPO from the SFT model (LoRA r=16, G=4) on a keyword/correctness reward ("The answer is N." with the
   right N), with the `rlhf_diversity` callback logging the suite during training, then measured the same way.

The paper predicts the RL model has lower per-input diversity than SFT. Printed: a Markdown table for the README
and one plot (per-input and across-input EAD over the cumulative steps) saved under plugins/rlhf_diversity/.

    python examples/demos/rlhf_diversity_demo.py [--sft_steps 6] [--grpo_steps 4] [--num_prompts 6] [--k 6]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]


def answer_reward(completions, answer, **kwargs):
    """1 for "The answer is N." with the gold N, 0.25 for the phrase with a wrong number, else 0."""
    scores = []
    for completion, gold in zip(completions, answer, strict=True):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        found = re.findall(r"The answer is\s*(-?[\d,]+)", text)
        scores.append(1.0 if found and found[-1].replace(",", "") == str(gold) else 0.25 if found else 0.0)
    return scores


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from trl_ext.cli import main as trl_ext
    from trl_ext.devtools.demo import markdown_table, train_arm
    from trl_ext.evaluation.plots import plot_over_steps

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sft_steps", type=int, default=6)
    parser.add_argument("--grpo_steps", type=int, default=4)
    parser.add_argument("--num_prompts", type=int, default=6)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--max_new_tokens", type=int, default=24)
    parser.add_argument("--output_dir", default="outputs/rlhf_diversity_demo")
    args = parser.parse_args()

    start, cpu_start = time.time(), time.process_time()
    out = Path(args.output_dir)
    spec = (
        f"rlhf_diversity:num_prompts={args.num_prompts}:num_samples={args.k}:max_new_tokens={args.max_new_tokens}"
        f":batch_size={args.k * args.num_prompts}:progress=false"
    )

    def measure(name: str, model: str) -> dict[str, float]:
        folder = out / "eval" / name
        if trl_ext(["evaluate", "--callbacks", spec, "--model_name_or_path", model, "--output_dir", str(folder)]):
            raise SystemExit(f"evaluate failed for {name}")
        (result,) = json.loads((folder / "evaluate.json").read_text())["results"]
        return result["figures"]["rlhf_diversity"]

    figures, minutes = {"base": measure("base", args.model)}, {}
    sft_dir, grpo_dir = out / "sft", out / "grpo"
    minutes["sft"] = train_arm(
        "sft",
        sft_dir,
        model_name_or_path=args.model,
        dataset_name="builtin:arith",
        max_steps=args.sft_steps,
        per_device_train_batch_size=4,
        learning_rate="1e-4",
    )
    figures["sft"] = measure("sft", str(sft_dir))
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the reward below, by its dotted path
    every = max(1, args.grpo_steps // 2)
    minutes["grpo"] = train_arm(
        "grpo",
        grpo_dir,
        model_name_or_path=str(sft_dir),
        dataset_name="builtin:arith",
        dataset_config="grpo",
        reward_funcs="rlhf_diversity_demo.answer_reward",
        use_peft=True,
        lora_r=16,
        lora_alpha=32,
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=args.max_new_tokens,
        learning_rate="5e-4",
        max_steps=args.grpo_steps,
        logging_steps=1,
        save_strategy="steps",  # one checkpoint at the end: its trainer_state.json keeps the rewards per step
        save_steps=args.grpo_steps,
        extra=["--callbacks", f"{spec}:every_n_steps={every}:at_train_end=false"],
    )
    figures["grpo"] = measure("grpo", str(grpo_dir))

    # the GRPO run's own log: reward per step
    rewards = []
    state = grpo_dir / f"checkpoint-{args.grpo_steps}" / "trainer_state.json"
    if state.exists():
        rewards = [e["reward"] for e in json.loads(state.read_text())["log_history"] if "reward" in e]

    keys = ["mean_per_input_ead", "std_per_input_ead", "overall_single_output_ead", "overall_ead"]
    keys += ["mean_per_input_distinct", "mean_per_input_ngram_cos", "overall_single_output_ngram_cos"]
    header = ["model", *keys]
    rows = [[name, *(f"{figures[name][f'diversity/{k}']:.3f}" for k in keys)] for name in figures]
    steps = {"base": 0, "sft": args.sft_steps, "grpo": args.sft_steps + args.grpo_steps}
    series = {
        label: [(steps[name], figures[name][f"diversity/{key}"]) for name in figures]
        for label, key in (
            ("per-input EAD (K samples of a prompt)", "mean_per_input_ead"),
            ("across-input EAD (1 sample per prompt)", "overall_single_output_ead"),
            ("per-input 3-gram cosine diversity", "mean_per_input_ngram_cos"),
        )
    }
    png = plot_over_steps(
        series,
        ROOT / "plugins" / "rlhf_diversity" / "demo_diversity.png",
        title=f"SmolLM2-135M: base -> SFT {args.sft_steps} -> GRPO {args.grpo_steps} (K={args.k}, T=1)",
        ylabel="diversity",
        xlabel="training step (SFT, then GRPO)",
    )
    during = grpo_dir / "plots" / "rlhf_diversity.png"
    if during.exists():
        shutil.copy(during, ROOT / "plugins" / "rlhf_diversity" / "demo_grpo_callback.png")
    print(markdown_table(header, rows))
    print(f"\nGRPO reward per step: {[round(r, 3) for r in rewards]}")
    print(f"Plot: {png}")
    print(
        f"SFT {args.sft_steps} steps ({minutes['sft']:.1f} min), GRPO {args.grpo_steps} steps "
        f"({minutes['grpo']:.1f} min); {args.num_prompts} prompts x K={args.k}, {args.max_new_tokens} new tokens; "
        f"total wall {(time.time() - start) / 60:.1f} min, CPU {time.process_time() - cpu_start:.0f} s (1 thread)"
    )


if __name__ == "__main__":
    main()
