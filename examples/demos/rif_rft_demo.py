"""RIF-RFT's small-scale demonstration (arXiv:2507.05386) on builtin:rif_tasks with SmolLM2-135M-Instruct:

1. the rollout-based instance filter (`rif_rft`, K rollouts per prompt at the training temperature, scored by
   `rif_task_reward`) on the `add` task's training prompts: kept fraction, all-wrong / all-correct fractions;
2. GRPO (LoRA, G = 4, dr_grpo, the filter's temperature 0.7: at T = 1 the 135M model's samples are mostly noise) on the unfiltered and on the filtered prompts, the same number of steps, each with
   the `rif_forgetting` callback: the base model counts as having finished task 1 (`first`: the first letter of a word), so the run trains task
   2 (`add`) and FM_2 = a_{1,first} - a_{2,first} is the forgetting of task 1, AA_2 the mean of both;
3. the card's comparison: SFT on the same `add` prompts with their gold answers (same LoRA, steps, batch and learning
   rate), whose forgetting of `first` the paper finds larger than GRPO's;
4. per arm: the share of GRPO groups with zero reward variance (TRL's frac_reward_zero_std: no gradient), the mean
   reward, the held-out accuracies, AA_2 and FM_2, wall time and CPU-seconds.

    OMP_NUM_THREADS=1 python examples/demos/rif_rft_demo.py [--steps 8] [--num_rollouts 4] [--n_eval 16]
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.models import load_model, load_tokenizer
from trl_ext.training.cost import cpu_seconds
from trl_ext_plugins.rif_rft.data import rif_task_judge
from trl_ext_plugins.rif_rft.filter import make_rif_transform
from trl_ext_plugins.rif_rft.forgetting import average_accuracy, forgetting_measure, generation_accuracy

TASKS = ("first", "add")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def logs_of(result: dict) -> bool:
    return result["reward"] is not None


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--num_rollouts", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--n_train", type=int, default=48)
    parser.add_argument("--n_eval", type=int, default=16)
    parser.add_argument("--output_dir", default="outputs/rif_rft-demo")
    args = parser.parse_args()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start_all, cpu_all = time.time(), cpu_seconds()

    # 1. the filter, with the model GRPO starts from
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    train = load_dataset("builtin:rif_tasks", "add")["train"].select(range(args.n_train))
    start, cpu = time.time(), cpu_seconds()
    transform = make_rif_transform(model, tokenizer, rewards="rif_task_reward", num_rollouts=args.num_rollouts, temperature=args.temperature,
                                   max_new_tokens=args.max_new_tokens, batch_size=8,
                                   curation_dir=str(out / "curation"))  # fmt: skip
    kept = transform(train)
    filter_wall, filter_cpu = time.time() - start, cpu_seconds() - cpu
    stats = transform.summary
    print(json.dumps(stats), f"filter: {filter_wall:.0f} s wall, {filter_cpu:.0f} CPU-s", flush=True)
    data_files = {
        "unfiltered": out / "add_all.jsonl",
        "filtered": out / "add_kept.jsonl",
        "sft": out / "add_sft.jsonl",
    }
    train.to_json(str(data_files["unfiltered"]), lines=True)
    kept.remove_columns(["rif_acc", "rif_var"]).to_json(str(data_files["filtered"]), lines=True)
    train.map(lambda row: {"completion": [{"role": "assistant", "content": row["answer"]}]}).to_json(
        str(data_files["sft"]), lines=True
    )

    # the base model's row: it "finished" task 1 (first), before the runs train task 2 (add)
    test = load_dataset("builtin:rif_tasks", "all")["test"]
    evals = {
        t: generation_accuracy(
            [r for r in test if r["task"] == t][: args.n_eval], rif_task_judge, max_new_tokens=args.max_new_tokens
        )
        for t in TASKS
    }
    base = {t: evals[t](model, tokenizer) for t in TASKS}
    print("base accuracies", base, flush=True)
    del model

    # 2. GRPO on each dataset, and SFT on the gold answers, same steps
    results = {}
    for arm, path in data_files.items():
        history = out / f"{arm}_cl.json"
        history.write_text(json.dumps({"tasks": list(TASKS), "base": base, "rows": {"first": base}}))
        start, cpu = time.time(), cpu_seconds()
        shared = dict(
            model_name_or_path=args.model,
            dataset_name=str(path),
            callbacks=f"rif_forgetting:tasks=first+add:n={args.n_eval}:max_new_tokens={args.max_new_tokens}"
            f":history={history}",
            use_peft=True,
            lora_r=16,
            lora_alpha=32,
            per_device_train_batch_size=8,
            learning_rate="1e-4",
            max_steps=args.steps,
            logging_steps=1,
            save_strategy="steps",
            save_steps=args.steps,
        )
        if arm == "sft":
            train_arm("sft", out / arm, **shared)
        else:
            train_arm("grpo", out / arm, rewards="rif_task_reward", loss_type="dr_grpo", num_generations=4,
                      temperature=args.temperature, max_completion_length=args.max_new_tokens, **shared)  # fmt: skip
        wall, cpu_s = time.time() - start, cpu_seconds() - cpu
        state = json.loads((out / arm / f"checkpoint-{args.steps}" / "trainer_state.json").read_text())
        logs = [e for e in state["log_history"] if "frac_reward_zero_std" in e]
        rows = json.loads(history.read_text())["rows"]
        matrix = [[rows["first"][t] for t in TASKS], [rows["add"][t] for t in TASKS]]
        results[arm] = {
            "rows": len(kept) if arm == "filtered" else len(train),
            "frac_reward_zero_std": sum(e["frac_reward_zero_std"] for e in logs) / len(logs) if logs else None,
            "reward": sum(e["reward"] for e in logs) / len(logs) if logs else None,
            "acc_add": rows["add"]["add"],
            "acc_first": rows["add"]["first"],
            "AA_2": average_accuracy(matrix),
            "FM_2": forgetting_measure(matrix),
            "wall_s": wall,
            "cpu_s": cpu_s,
        }
        print(arm, results[arm], flush=True)

    print(
        f"\nrif_rft filter on {len(train)} add prompts, K={args.num_rollouts}, T={args.temperature}, max {args.max_new_tokens} tokens: "
        f"kept {stats['rif/kept_frac']:.2f} (all wrong {stats['rif/all_wrong_frac']:.2f}, all correct "
        f"{stats['rif/all_correct_frac']:.2f}, mean acc {stats['rif/mean_acc']:.2f}); {filter_wall:.0f} s wall, "
        f"{filter_cpu:.0f} CPU-s. Base accuracy: first {base['first']:.2f}, add {base['add']:.2f} "
        f"({args.n_eval} held-out each, greedy)."
    )
    header = ["arm (data)", "rows", "zero-std groups", "mean reward", "acc add", "acc first", "AA_2", "FM_2",
              "wall s", "CPU-s"]  # fmt: skip
    table = [
        [f"{arm} (GRPO)" if logs_of(r) else "SFT (gold answers)", r["rows"], fmt(r["frac_reward_zero_std"]),
         fmt(r["reward"]), f"{r['acc_add']:.2f}",
         f"{r['acc_first']:.2f}", f"{r['AA_2']:.3f}", f"{r['FM_2']:.3f}", f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}"]
        for arm, r in results.items()
    ]  # fmt: skip
    print(markdown_table(header, table))
    print(f"total {time.time() - start_all:.0f} s wall, {cpu_seconds() - cpu_all:.0f} CPU-s, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")  # fmt: skip
    (out / "results.json").write_text(json.dumps({"filter": stats, "base": base, "arms": results}, indent=1))


if __name__ == "__main__":
    main()
