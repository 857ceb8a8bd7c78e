"""semgrpo's small-scale demonstration: GRPO on `builtin:explanations` (64 arithmetic multiple-choice questions with
one-sentence reference explanations), SmolLM2-135M-Instruct, G=4, two arms from the same start:

- `acc+fmt`: mcq_accuracy_reward + explanation_format_reward (weights 1.0, 0.5)
- `acc+fmt+sem`: the same plus semantic_similarity_reward (weights 1.0, 1.0, 0.5; all-MiniLM-L6-v2)

then greedy answers on the 16 held-out questions, scored by all three rewards (R_sem for both arms), next to the
untrained model. The card reads: held-out R_sem should rise more with the semantic reward, accuracy should not fall.

    python examples/demos/semgrpo_demo.py [--max_steps 20]
"""

import argparse
from pathlib import Path

from trl_ext.devtools.demo import markdown_table, train_arm

REWARDS = "mcq_accuracy_reward,explanation_format_reward"


def held_out_scores(model_path: str, max_new_tokens: int) -> dict[str, float]:
    """Mean R_sem, R_acc, R_fmt of greedy completions of builtin:explanations' 16 test questions."""
    from trl_ext.inference import generate
    from trl_ext.models import load_model, load_tokenizer
    from trl_ext_plugins.semgrpo import build_explanations, make_semgrpo_rewards

    test = build_explanations()["test"]
    model, tokenizer = load_model(model_path), load_tokenizer(model_path)
    completions = generate(model, tokenizer, list(test["prompt"]), max_new_tokens=max_new_tokens, progress=False)
    rewards, _ = make_semgrpo_rewards()
    columns = {"reference_explanation": list(test["reference_explanation"]), "answer": list(test["answer"])}
    means = {}
    for key, reward in zip(("sem", "acc", "fmt"), rewards, strict=True):
        values = [v for v in reward(list(test["prompt"]), completions, **columns) if v is not None]
        means[key] = sum(values) / len(values)
    return means


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=20)
    parser.add_argument("--max_completion_length", type=int, default=64)
    parser.add_argument("--learning_rate", default="5e-5")
    parser.add_argument("--per_device_train_batch_size", type=int, default=8)
    parser.add_argument("--output_dir", default="outputs/semgrpo-demo")
    args = parser.parse_args()

    common = {
        "model_name_or_path": "smollm2-135m",
        "dataset_name": "builtin:explanations",
        "num_generations": 4,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "max_completion_length": args.max_completion_length,
        "learning_rate": args.learning_rate,
        "max_steps": args.max_steps,
        "logging_steps": 2,
    }
    arms = {
        "acc+fmt": {"rewards": REWARDS, "reward_weights": [1.0, 0.5]},
        "acc+fmt+sem": {"rewards": "semantic_similarity_reward," + REWARDS, "reward_weights": [1.0, 1.0, 0.5]},
    }
    rows = []
    base = held_out_scores("smollm2-135m", args.max_completion_length)
    rows.append(["untrained", f"{base['sem']:.3f}", f"{base['acc']:.3f}", f"{base['fmt']:.3f}", "-"])
    print("held-out, untrained:", rows[-1], flush=True)
    for name, flags in arms.items():
        out = Path(args.output_dir) / name.replace("+", "_")
        minutes = train_arm("grpo", out, **common, **flags)
        scores = held_out_scores(str(out), args.max_completion_length)
        rows.append([name, f"{scores['sem']:.3f}", f"{scores['acc']:.3f}", f"{scores['fmt']:.3f}", f"{minutes:.1f}"])
        print(f"held-out, {name}:", rows[-1], flush=True)
    print(
        f"\nGRPO on builtin:explanations, smollm2-135m, G=4, {args.max_steps} steps, lr {args.learning_rate}; "
        "held-out 16 questions, greedy"
    )
    print(markdown_table(["arm", "held-out R_sem", "held-out R_acc", "held-out R_fmt", "train min"], rows))


if __name__ == "__main__":
    main()
