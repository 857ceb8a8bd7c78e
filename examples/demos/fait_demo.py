"""The FAIT card's small-scale demonstration: SmolLM2-135M-Instruct fine-tuned on small Python functions with unit
tests (builtin:code_mutants: incorrect variants made by single-token mutations) with plain SFT and with FAIT
(a = b = 1, renormalised), same data, steps and learning rate. Read: pass@1 of greedy solutions on held-out
functions (their asserts run in trl_ext.rewards.sandbox), and the teacher-forced NLL of the reference solutions on the
error-sensitive tokens (where a variant differs) and on the other tokens.

    python examples/demos/fait_demo.py [--max_steps 40] [--eval_size 50]

The card's full scale is 2 epochs over the 300 training functions and 100 held-out ones: --max_steps 75
(batch 8), --eval_size 100.
"""

import argparse
import json
import tempfile

from trl_ext.data import load_dataset
from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.inference import generate
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.fait import FAITConfig, FAITTrainer, pass_at_1


def sensitive_nll(model, tokenizer, dataset) -> dict:
    """Token-mean NLL of the reference solutions on the error-sensitive tokens and on the others (FAIT's own eval
    metrics, computed with a = b = 0 so the loss is plain SFT's)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = FAITConfig(
            output_dir=tmp,
            per_device_eval_batch_size=8,
            report_to="none",
            max_length=256,
            bf16=False,
            fait_line_weight=0.0,
            fait_token_weight=0.0,
        )
        trainer = FAITTrainer(
            model=model, args=args, train_dataset=dataset, eval_dataset=dataset, processing_class=tokenizer
        )
        metrics = trainer.evaluate()
    return {"nll_sensitive": metrics["eval_fait/nll_sensitive"], "nll_other": metrics["eval_fait/nll_other"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", default="5e-5")
    parser.add_argument("--eval_size", type=int, default=50)
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--output_dir", default="outputs/fait-demo")
    args = parser.parse_args()

    test = load_dataset("builtin:code_mutants")["test"]
    test = test.select(range(min(args.eval_size, len(test))))
    tokenizer = load_tokenizer(args.model)

    def read(model) -> dict:
        answers = generate(model, tokenizer, test["prompt"], max_new_tokens=args.max_new_tokens)
        return {"pass@1": pass_at_1(answers, test["tests"]), **sensitive_nll(model, tokenizer, test)}

    results = {"base": read(load_model(args.model))}
    print("base", json.dumps(results["base"]), flush=True)
    runs = {"sft": [], "fait": ["--fait_line_weight", "1.0", "--fait_token_weight", "1.0", "--fait_dynamic", "renorm"]}
    for method, extra in runs.items():
        out = f"{args.output_dir}/{method}"
        minutes = train_arm(
            method,
            out,
            extra,
            model_name_or_path=args.model,
            dataset_name="builtin:code_mutants",
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=256,
        )
        results[method] = {**read(load_model(out)), "train_minutes": minutes}
        print(method, json.dumps(results[method]), flush=True)

    print(
        f"\nbuiltin:code_mutants, {args.model}, {args.max_steps} steps x {args.batch_size}, lr {args.learning_rate}; "
        f"pass@1 (greedy, sandboxed asserts) and reference NLL on {len(test)} held-out functions"
    )
    rows = [
        [
            method,
            f"{r['pass@1']:.1%}",
            f"{r['nll_sensitive']:.3f}",
            f"{r['nll_other']:.3f}",
            f"{r['train_minutes']:.1f}" if "train_minutes" in r else "-",
        ]
        for method, r in results.items()
    ]
    print(markdown_table(["method", "pass@1", "NLL sensitive tokens", "NLL other tokens", "train min"], rows))


if __name__ == "__main__":
    main()
