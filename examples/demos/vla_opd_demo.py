"""VLA-OPD's small-scale demonstration (arXiv 2603.26666), on builtin:arith with SmolLM2-135M-Instruct:

1. teacher: the built-in model fine-tuned briefly by SFT on builtin:arith's worked solutions ("... The answer is N.");
2. student A (VLA-OPD): the base model distilled on-policy from that teacher (reverse KL, no reward, no labels), and
   with `--divergences`, the card's ablations (forward KL, hard CE on the teacher's top token) trained the same way;
3. student B (plain GRPO): the base model trained with a task reward (1 for the right answer, 0.1 for the format
   alone) on the same prompts, steps, learning rate and completions per step (OPD: `batch` prompts x 1 completion;
   GRPO: 1 prompt x `batch` completions, GRPO needs a group);
4. greedy evaluation on held-out problems: format rate ("The answer is N." present), accuracy, mean length; the
   base model and the teacher as references; for each distilled student its logged `opd/student_entropy` (first and
   last step; the card expects forward KL to raise it and hard CE to collapse it) and its mean per-token KL to the
   original student on held-out general prompts (builtin:json_extract's test conversations, prompt + reference
   answer: the card expects reverse KL to move the student's general behaviour least). Wall time and CPU-seconds
   per stage.

    python examples/demos/vla_opd_demo.py [--sft_steps 30] [--sft_batch 8] [--steps 12] [--batch 4] [--eval_size 24]

Run it alone on the machine with one torch thread (OMP_NUM_THREADS=1); the figures in the README came from a machine
shared with other jobs, so wall times are upper bounds.
"""

import argparse
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from trl_ext.data import load_dataset  # noqa: E402
from trl_ext.devtools.demo import markdown_table, train_arm  # noqa: E402
from trl_ext.inference import generate_completions  # noqa: E402
from trl_ext.inference.scoring import tokenize_pair  # noqa: E402
from trl_ext.losses.divergence import divergence_stats  # noqa: E402
from trl_ext.losses.token_loss import LMHead  # noqa: E402
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


@torch.no_grad()
def kl_to_original(model, original, tokenizer, rows) -> float:
    """Mean over answer tokens of KL(p_model || p_original), each model reading the same prompt + reference answer;
    the chunked divergence statistics on both decoders' last hidden states (no full-vocabulary logits kept)."""
    total, count = 0.0, 0
    for row in rows:
        ids, mask = tokenize_pair(tokenizer, row["prompt"], row["completion"])
        x = torch.tensor([ids])
        scored = torch.tensor(mask[1:], dtype=torch.bool)  # position t predicts token t + 1
        h = model.get_decoder()(input_ids=x).last_hidden_state[0, :-1][scored]
        h0 = original.get_decoder()(input_ids=x).last_hidden_state[0, :-1][scored]
        stats = divergence_stats(h, LMHead.of(model), h0, LMHead.of(original))
        total, count = total + stats.reverse_kl.sum().item(), count + int(scored.sum())
    return total / max(count, 1)


def logged_entropy(folder: str, steps: int) -> tuple[float, float]:
    """`opd/student_entropy` at the first and the last logged step of an arm (its final checkpoint's state)."""
    state = json.loads((Path(folder) / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    values = [e["opd/student_entropy"] for e in state["log_history"] if "opd/student_entropy" in e]
    return values[0], values[-1]


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
    parser.add_argument(
        "--divergences", default="reverse_kl,forward_kl,hard_ce", help="distilled arms (reverse_kl is VLA-OPD)"
    )
    parser.add_argument("--kl_rows", type=int, default=16, help="held-out general conversations for the KL")
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
    divergences = args.divergences.split(",")
    for divergence in divergences:
        measured(
            f"VLA-OPD {divergence}",
            lambda divergence=divergence: train_arm(
                "vla_opd", f"{out}/vla_opd_{divergence}", **{**common, "logging_steps": 1}, **arms,
                divergence=divergence, teacher_model_name_or_path=f"{out}/teacher", save_strategy="steps",
                save_steps=args.steps,
            ),
        )  # fmt: skip
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
    general = load_dataset("builtin:json_extract", form="sft")["test"].select(range(args.kl_rows))
    original = load_model(args.model).eval()
    students = [(f"VLA-OPD student ({d})", f"{out}/vla_opd_{d}") for d in divergences]
    entropy_rows = []
    for name, path in [
        ("base (student before)", args.model),
        ("teacher (SFT)", f"{out}/teacher"),
        *students,
        ("GRPO student", f"{out}/grpo"),
    ]:
        model = load_model(path).eval()
        if (name, path) in students:
            first, last = logged_entropy(path, args.steps)
            kl = kl_to_original(model, original, tokenizer, general)
            entropy_rows.append([name, f"{first:.3f}", f"{last:.3f}", f"{kl:.4f}"])
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
    print(
        f"\nstudent entropy (opd/student_entropy, step 1 -> {args.steps}); KL to the original student on "
        f"{args.kl_rows} held-out builtin:json_extract conversations (nats per answer token)"
    )
    print(markdown_table(["student", "entropy step 1", f"entropy step {args.steps}", "KL to original"], entropy_rows))
    print()
    print(
        markdown_table(
            ["stage", "wall (min)", "CPU-seconds"], [[k, f"{w:.1f}", f"{c:.0f}"] for k, (w, c) in cost.items()]
        )
    )


if __name__ == "__main__":
    main()
