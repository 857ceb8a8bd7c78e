"""PaST's weight steps on saved checkpoints, outside a recipe:

    python -m trl_ext_plugins.past extract --rl RL_DIR --sft SFT_DIR [--base BASE] --out skill.safetensors
    python -m trl_ext_plugins.past inject --model TARGET_SFT_DIR --skill skill.safetensors --lam 1.0 --out FINAL_DIR

`extract` prints ||v|| and, with `--base` (theta_0), the card's mean |cos| between dW_sft and dW_rl. Models load in
float32 (the deltas are float32 whatever the checkpoints' dtype); `inject` saves the model and its tokenizer.
"""

from __future__ import annotations

import argparse
import json
import sys

from .skill_vector import DEFAULT_EXCLUDE, SkillVector, cosine_report, full_state, mean_abs_cosine


def _load(name: str):
    import torch

    from trl_ext.models import load_model

    return load_model(name, dtype=torch.float32)


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v for v in value.split("|") if v)


def extract(args: argparse.Namespace) -> dict[str, float]:
    include, exclude = _split(args.include), _split(args.exclude) or ()
    sft = full_state(_load(args.sft))
    skill = SkillVector.from_state_dicts(full_state(_load(args.rl)), sft, include, exclude)
    skill.save(args.out)
    figures = {"past/skill_norm": skill.norm(), "tensors": len(skill)}
    if args.base:
        base = full_state(_load(args.base), list(skill.deltas))
        sft_delta = {n: sft[n] - base[n] for n in skill.deltas}
        figures["past/mean_abs_cos"] = mean_abs_cosine(cosine_report(sft_delta, skill))
    return figures


def inject(args: argparse.Namespace) -> dict[str, float]:
    from trl_ext.models import load_tokenizer

    model = _load(args.model)
    skill = SkillVector.load(args.skill)
    skill.apply(model, args.lam)
    model.save_pretrained(args.out)
    load_tokenizer(args.model).save_pretrained(args.out)
    return {"past/lam": args.lam, "past/skill_norm": skill.norm()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trl_ext_plugins.past", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("extract", help="v = theta_rl - theta_sft, saved as float32 safetensors.")
    p.add_argument("--rl", required=True, help="The RL model (theta_rl_S): a folder or model name.")
    p.add_argument("--sft", required=True, help="The SFT model the RL run started from (theta_sft_S).")
    p.add_argument("--base", help="theta_0, for the orthogonality diagnostic (optional).")
    p.add_argument("--out", required=True, help="The skill vector file to write.")
    p.add_argument("--include", help="Only parameters whose name contains one of these, 'a|b' (default: all).")
    p.add_argument("--exclude", default="|".join(DEFAULT_EXCLUDE), help="Leave these out, 'a|b' ('' for none).")
    p.set_defaults(func=extract)
    p = sub.add_parser("inject", help="theta_final = theta_sft_T + lam * v, saved with its tokenizer.")
    p.add_argument("--model", required=True, help="The target SFT model (theta_sft_T).")
    p.add_argument("--skill", required=True, help="The skill vector file.")
    p.add_argument("--lam", type=float, default=1.0, help="lambda (default 1.0).")
    p.add_argument("--out", required=True, help="The folder to save theta_final to.")
    p.set_defaults(func=inject)
    args = parser.parse_args(argv)
    print(json.dumps(args.func(args), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
