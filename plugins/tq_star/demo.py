"""The card's small demonstration: SmolLM2-135M-Instruct as both pi_sft and rho_BL, the politeness keyword reward,
mean reward and KL estimate against alpha, and tokens/s of tq_star against `model.generate` on the same prompts.

    OMP_NUM_THREADS=1 python -m trl_ext_plugins.tq_star.demo --output_dir tq_star_demo

Writes `results.json` and `reward_kl_vs_alpha.png` into the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

TOPICS = [
    "a customer whose parcel arrived late",
    "a neighbour who lent you a ladder",
    "a colleague who asked for the meeting notes",
    "a student asking when the exam is",
    "a friend who invited you to dinner",
    "a guest asking where to park",
    "a client asking for an invoice copy",
    "a teacher who sent homework feedback",
    "a shop that fixed your bike",
    "a user reporting a broken link",
    "a team mate who covered your shift",
    "a visitor asking for the wifi password",
    "a reader who found a typo in your post",
    "a landlord announcing a repair visit",
    "a volunteer offering help at the fair",
    "a caller asking about opening hours",
    "a cousin sending a birthday card",
    "a coach changing the practice time",
    "a librarian reminding you of a late book",
    "a stranger who returned your wallet",
]


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Write a one-sentence reply to {topic}."}] for topic in TOPICS[:n]]


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 2.0])
    p.add_argument("--num_prompts", type=int, default=20)
    p.add_argument("--max_new_tokens", type=int, default=24)
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--batch_candidates", type=int, default=20)
    p.add_argument("--output_dir", default="tq_star_demo")
    args = p.parse_args(argv)

    import torch

    from trl_ext.inference.generation import generate_completions
    from trl_ext.models import load_model, load_tokenizer
    from trl_ext_plugins.tq_star.api import generate, summarize
    from trl_ext_plugins.tq_star.rewards import keyword_reward

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, tokenizer = load_model(args.model).eval(), load_tokenizer(args.model)
    rows = prompts(args.num_prompts)
    common = dict(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=False)

    plain, wall, cpu = _timed(lambda: generate_completions(model, tokenizer, rows, **common))
    tokens = sum(g.num_tokens for g in plain)
    results: dict = {
        "settings": vars(args),
        "threads": torch.get_num_threads(),
        "model.generate": {"tokens": tokens, "wall_s": wall, "cpu_s": cpu, "tokens_per_s": tokens / wall},
        "alphas": {},
    }
    print(f"model.generate: {tokens} tokens, {wall:.1f} s wall, {cpu:.1f} CPU-s, {tokens / wall:.1f} tok/s")
    for alpha in args.alphas:
        out, wall, cpu = _timed(
            lambda alpha=alpha: generate(
                model,
                tokenizer,
                rows,
                baseline_model=model,
                reward=keyword_reward,
                alpha=alpha,
                top_k=args.top_k,
                horizon=args.horizon,
                **common,
            )  # fmt: skip
        )
        figures = summarize(out, rows, keyword_reward)
        n = sum(g.num_tokens for g in out)
        figures.update(wall_s=wall, cpu_s=cpu, tokens_per_s=n / wall, example=out[0].text)
        results["alphas"][str(alpha)] = figures
        print(
            f"alpha={alpha}: reward {figures['reward']:.2f}, KL {figures['kl']:.2f}, distinct-2 "
            f"{figures['distinct_2']:.2f}, {n} tokens, {wall:.1f} s wall, {cpu:.1f} CPU-s, {n / wall:.2f} tok/s"
        )
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    try:
        from trl_ext.evaluation.plots import plot_over_steps

        series = {
            key: [(float(a), f[key]) for a, f in results["alphas"].items()] for key in ("reward", "kl", "distinct_2")
        }
        plot_over_steps(
            {
                "mean keyword reward": series["reward"],
                "KL estimate to pi_sft": series["kl"],
                "distinct-2": series["distinct_2"],
            },  # fmt: skip
            folder / "reward_kl_vs_alpha.png",
            title=f"Transfer Q* on {args.model} (k={args.top_k}, H={args.horizon})",
            xlabel="alpha",
        )
    except ImportError as exc:
        print(f"No plot: {exc}")
    return results


if __name__ == "__main__":
    main()
