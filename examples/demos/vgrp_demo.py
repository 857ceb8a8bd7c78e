"""VGRP-Bench's small-scale demonstration: SmolLM2-135M-Instruct zero-shot vs S-SFT (train on the solution) vs R-SFT
(train on the rule-based solver's steps) on 4x4 Sudoku with 8-10 clues (`builtin:vgrp`), one epoch each through
`trl-ext train sft --transforms vgrp_s_sft|vgrp_r_sft`. Prints perception accuracy and solve rate (the official
verifier, gated on perception, and the strict one) on held-out 4x4 Sudoku (solutions disjoint from train) and, to read
the paper's poor generalisation, on unseen 4x4 Binairo and Futoshiki. `--grpo_steps N` adds N GRPO steps with
`vgrp_reward` on top of the R-SFT model and prints (and plots, `grpo_reward.png`) its reward at every step.

    python examples/demos/vgrp_demo.py [--num_train 400] [--num_eval 50] [--num_other 10] [--grpo_steps 0]
"""

import argparse
import json
from pathlib import Path

from datasets import DatasetDict

from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.inference.generation import generate
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.vgrp.config import VGRPConfig
from trl_ext_plugins.vgrp.data import build, make_vgrp_dataset
from trl_ext_plugins.vgrp.verify import Puzzle, verify

MODEL = "smollm2-135m"


def evaluate(model_dir: str, sets: dict, max_new_tokens: int) -> dict:
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    results = {}
    for name, data in sets.items():
        outputs = generate(model, tokenizer, list(data["prompt"]), max_new_tokens=max_new_tokens, batch_size=10)
        counts = {"percept": 0, "solve_official": 0, "solve_strict": 0}
        for row, text in zip(data, outputs, strict=True):
            puzzle = Puzzle.from_row(row["game"], row["init_board"], row["side_info"])
            official, strict = verify(text, puzzle, "official"), verify(text, puzzle, "strict")
            counts["percept"] += official.perception_ok
            counts["solve_official"] += official.answer_ok
            counts["solve_strict"] += strict.answer_ok
        results[name] = {k: v / len(data) for k, v in counts.items()}
        results[name]["example"] = outputs[0]
    return results


def report_reward_curve(state_file: Path, png: Path) -> None:
    """The GRPO stage's mean vgrp_reward per step (TRL's logged `reward`), printed and drawn."""
    from trl_ext.evaluation.plots import PlotUnavailableError, plot_over_steps

    history = json.loads(state_file.read_text())["log_history"]
    curve = [(entry["step"], entry["reward"]) for entry in history if "reward" in entry]
    print("GRPO reward per step: " + ", ".join(f"{step}: {reward:.3f}" for step, reward in curve), flush=True)
    try:
        plot_over_steps({"R-SFT+GRPO": curve}, png, title="vgrp_reward during GRPO", ylabel="mean reward")
    except PlotUnavailableError as exc:
        print(f"no plot ({exc})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_train", type=int, default=400)
    parser.add_argument("--num_eval", type=int, default=50)
    parser.add_argument("--num_other", type=int, default=10)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning_rate", default="1e-4")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--grpo_steps", type=int, default=0)
    parser.add_argument("--output_dir", default="outputs/vgrp-demo")
    args = parser.parse_args()

    out = Path(args.output_dir)
    data = build()
    train = data["train"].select(range(min(args.num_train, len(data["train"]))))
    train_dir = out / "data"
    DatasetDict({"train": train}).save_to_disk(str(train_dir))
    sets = {"sudoku 4x4 (held out)": data["test"].select(range(min(args.num_eval, len(data["test"]))))}
    for game in ("binairo", "futoshiki"):
        sets[f"{game} 4x4 (unseen game)"] = make_vgrp_dataset(
            VGRPConfig(games=[game], sizes=[4]), args.num_other, "val"
        )

    arms = {"zero-shot": (MODEL, 0.0, 128)}
    for arm, transform, tokens in (("S-SFT", "vgrp_s_sft", 128), ("R-SFT", "vgrp_r_sft", 400)):
        arm_dir = out / arm
        minutes = train_arm(
            "sft",
            arm_dir,
            model_name_or_path=MODEL,
            dataset_name=str(train_dir),
            transforms=transform,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=1024,
            logging_steps=5,
        )
        arms[arm] = (str(arm_dir), minutes, tokens)
    if args.grpo_steps:
        arm_dir = out / "R-SFT+GRPO"
        minutes = train_arm(
            "grpo",
            arm_dir,
            model_name_or_path=str(out / "R-SFT"),
            dataset_name=str(train_dir),
            rewards="vgrp_reward",
            num_generations=4,
            per_device_train_batch_size=8,
            max_completion_length=400,
            learning_rate="1e-6",
            max_steps=args.grpo_steps,
            logging_steps=1,
            save_strategy="steps",
            save_steps=args.grpo_steps,
        )
        arms["R-SFT+GRPO"] = (str(arm_dir), minutes, 400)
        report_reward_curve(arm_dir / f"checkpoint-{args.grpo_steps}" / "trainer_state.json", out / "grpo_reward.png")

    results = {}
    for arm, (model_dir, minutes, tokens) in arms.items():
        results[arm] = evaluate(model_dir, sets, tokens)
        print(f"{arm}: trained in {minutes:.1f} min; {json.dumps(results[arm], indent=1)}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))

    print(f"\nsmollm2-135m, {len(train)} train puzzles (4x4 Sudoku, 8-10 clues), {args.epochs:g} epoch(s) of SFT")
    header = ["arm", "train min"]
    for name, data_set in sets.items():
        header += [f"{name}: percept / solve (official) / solve (strict), n={len(data_set)}"]
    rows = []
    for arm, (_, minutes, _) in arms.items():
        row = [arm, f"{minutes:.1f}"]
        for name in sets:
            r = results[arm][name]
            row.append(f"{r['percept']:.2f} / {r['solve_official']:.2f} / {r['solve_strict']:.2f}")
        rows.append(row)
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
