"""LTA-Thinker's small-scale demonstration (shared/papers/lta-thinker.md), scaled down for a CPU: SmolLM2-135M-Instruct
on builtin:lta_steps (1-2 step arithmetic word problems with gold steps), three arms with the same training rows,
steps, batch, learning rate (the card's 1e-4) and seed:
  (a) plain SFT (TRL's SFTTrainer, `sft`, full fine-tuning, no thoughts) on the same solutions as prompt/completion;
  (b) LTA thoughts with the SFT loss only (`lta-thinker --kl_weight 0 --con_weight 0`), frozen base, K = 8;
  (c) full LTA-Thinker (SFT + semantic-alignment KL + reasoning-focus InfoNCE, 0.33 each), frozen base, K = 8.
The untrained base model (no thoughts) is measured too (`--skip_base` leaves it out).
Metric (card): exact match of the last \\boxed{} of the greedy answer against the gold answer on held-out rows (test
split), with the 95% interval over the rows; also the final number's match (`numeric_match`, more lenient), and for
the LTA arms `lta/thought_var` on the held-out rows (inference layout: the per-sample variance of each hidden dim over
the K thought rows of H, averaged). The card expects full LTA >= SFT-only thoughts > no thoughts, with a larger
thought variance for full LTA. Note: (a) trains all 134.5M weights, (b) and (c) only the 3.4M-parameter generator;
(b) keeps sft_weight 0.33 (the same SFT term as in (c); Adam makes the scale nearly irrelevant).

The numeric-match comparison of these arms is also `trl-ext compare --config examples/compare/lta_vs_sft.yaml` (an LTA
folder loads through the method's `load_output`, and generation fills the thoughts); this script adds the boxed
exact match, the untrained base and the held-out thought variance, which compare does not measure.

Card's full scale: 1k synthetic two-step problems, 2 epochs (250 steps of 8), lr 1e-4, K = 8, 200 held-out problems;
the paper's own runs: Qwen3-8B on GSM8K, K = 32, 10 epochs. Here by default: 25 steps of 8 rows (200 problems, one
pass), 64 held-out problems, max_length 256, one torch thread.

    OMP_NUM_THREADS=1 python examples/demos/lta_thinker_demo.py [--max_steps 25] [--eval_size 64]
    OMP_NUM_THREADS=1 python examples/demos/lta_thinker_demo.py --max_steps 2 --eval_size 4 --output_dir /tmp/x  # smoke
"""

import argparse
import json
import time
from pathlib import Path

import torch

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, mean_with_interval, train_arm
from trl_ext.evaluation.judges import numeric_match
from trl_ext.inference.generation import generate
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.lta_thinker.data import boxed_answer, generation_batch, lta_format
from trl_ext_plugins.lta_thinker.generation import generate_answers
from trl_ext_plugins.lta_thinker.loss import thought_variance
from trl_ext_plugins.lta_thinker.model import LTAThinkerModel

BASE = "smollm2-135m"


def scores(texts: list[str], rows: list[dict]) -> tuple[list[float], list[float]]:
    exact = [float(boxed_answer(t) == str(r["answer"]).strip()) for t, r in zip(texts, rows, strict=True)]
    numeric = [float(numeric_match(None, t, r["answer"])) for t, r in zip(texts, rows, strict=True)]
    return exact, numeric


@torch.no_grad()
def held_out_thought_var(model: LTAThinkerModel, tokenizer, rows: list[dict], batch_size: int = 16) -> float:
    """lta/thought_var on the held-out questions in the inference layout (no steps), averaged over the rows."""
    model.eval()
    total = 0.0
    for start in range(0, len(rows), batch_size):
        chunk = [
            lta_format({"question": r["question"], "answer": ""}, tokenizer, model.thought_token_ids, False, False)
            for r in rows[start : start + batch_size]
        ]
        batch = generation_batch(chunk, tokenizer.pad_token_id)
        states = model.thought_states(batch["assistant_input_ids"], batch["assistant_attention_mask"])
        total += thought_variance(states, batch["thought_index"][:, 2], model.num_thought_tokens).item() * len(chunk)
    return total / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=25)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_size", type=int, default=64)
    parser.add_argument("--learning_rate", default="1e-4", help="one learning rate for every arm (card: 1e-4)")
    parser.add_argument("--num_thought_tokens", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--skip_base", action="store_true", help="do not measure the untrained base model")
    parser.add_argument("--output_dir", default="outputs/demo-lta-thinker")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.output_dir)
    rows = load_dataset("builtin:lta_steps")["test"].select(range(args.eval_size)).to_list()
    tokenizer = load_tokenizer(BASE)
    common = dict(
        model_name_or_path=BASE,
        dataset_name="builtin:lta_steps",
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=256,
        gradient_checkpointing=False,
        use_cpu=True,
        bf16=False,
        logging_steps=5,
    )
    lta = dict(num_thought_tokens=args.num_thought_tokens)
    arms = [
        ("(a) plain SFT (full FT, no thoughts)", "sft", {}),
        ("(b) LTA thoughts, SFT loss only", "lta-thinker", {**lta, "kl_weight": 0.0, "con_weight": 0.0}),
        ("(c) LTA-Thinker (SFT + KL + InfoNCE)", "lta-thinker", lta),
    ]
    table, results = [], {}

    def measure(name: str, texts: list[str], train: str, trainable: int, var: float | None) -> None:
        exact, numeric = scores(texts, rows)
        eval_cpu = time.process_time() - eval_start
        table.append([name, train, f"{trainable:,}", mean_with_interval(exact), mean_with_interval(numeric),
                      "-" if var is None else f"{var:.4f}", f"{eval_cpu:.0f}"])  # fmt: skip
        results[name] = {"exact_match": exact, "numeric_match": numeric, "thought_var": var, "samples": texts[:3]}
        print(f"{name}: exact {sum(exact) / len(exact):.3f}; first answer: {texts[0]!r}", flush=True)

    prompts = [r["prompt"] for r in rows]
    if not args.skip_base:
        eval_start = time.process_time()
        texts = generate(load_model(BASE, dtype=torch.float32), tokenizer, prompts, args.max_new_tokens)
        measure("base model, no training", texts, "-", 0, None)
    for i, (name, method, flags) in enumerate(arms):
        folder = out / f"arm{i}-{method}"
        start = time.process_time()
        minutes = train_arm(method, folder, **common, **flags)
        train = f"{minutes:.1f} min / {time.process_time() - start:.0f} CPU-s"
        eval_start = time.process_time()
        if method == "sft":
            model = load_model(str(folder), dtype=torch.float32)
            texts = generate(model, tokenizer, prompts, args.max_new_tokens)
            measure(name, texts, train, sum(p.numel() for p in model.parameters()), None)
        else:
            model = LTAThinkerModel.from_pretrained(folder, dtype=torch.float32)
            var = held_out_thought_var(model, tokenizer, rows)
            texts = generate_answers(model, tokenizer, [r["question"] for r in rows], args.max_new_tokens)
            measure(name, texts, train, model.num_trainable_parameters(), var)
        del model
    (out / "results.json").write_text(json.dumps(results, indent=2))
    header = ["arm", "train wall / CPU", "trainable", "exact match (boxed) [95% CI]", "numeric match [95% CI]",
              "thought_var (held-out)", "eval CPU-s"]  # fmt: skip
    print(f"\n{args.max_steps} steps of {args.batch_size}, lr {args.learning_rate}, {len(rows)} held-out problems")
    print(markdown_table(header, table))


if __name__ == "__main__":
    main()
