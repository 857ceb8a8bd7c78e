"""Token-mean NLL of the reference completions, as `trl-ext compare --eval perplexity` scores them (log of each row's
perplexity, averaged over rows), for the base model and for the arms of a finished comparison. Usage:
    python plugins/peft_fm_survey/demo/nll.py [OUT_DIR_OF_COMPARE] [--rows 32]"""

import argparse
import json
import math
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("compare_dir", nargs="?", help="a finished comparison's --output_dir (default: base only)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from trl_ext.compare.metrics import measure, parse_metric
    from trl_ext.data import load_dataset
    from trl_ext.models import load_model, load_tokenizer

    split = load_dataset("builtin:arith", None, form="sft")["test"]
    rows = split.select(range(args.rows)).to_list()
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    values, _ = measure(parse_metric("perplexity"), model, tokenizer, rows)
    print(f"base      NLL {sum(math.log(v) for v in values) / len(values):.4f}")
    if args.compare_dir is None:
        return
    report = json.loads((Path(args.compare_dir) / "compare.json").read_text())
    for arm in report["arms"]:
        nll = sum(math.log(v) for v in arm["per_row"]) / len(arm["per_row"])
        print(f"{arm['arm']:9s} NLL {nll:.4f}  trainable {arm.get('trainable_params')}")


if __name__ == "__main__":
    main()
