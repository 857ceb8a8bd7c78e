"""RIF-RFT's rollout-based instance filter (card "Algorithm"): sample K rollouts per training prompt with the current
policy at the training temperature, score them with GRPO reward functions (registered rewards, TRL's, dotted paths)
and/or a judge, and drop the prompts whose K rewards carry no learning signal (all wrong, all correct, or no variance):
their group-normalised GRPO advantages are all 0, so dropping them changes no gradient, only the compute spent and
the batch composition.

Runs on `trl_ext.data.curation.run_curation`: batched generation (K sequences per prompt in one `generate` call),
a progress bar, finished batches saved with a hash of their rows under a key holding a fingerprint of the model and
every generation option (a restarted run generates nothing twice; changing only the decision thresholds re-decides
from the saved rewards), shardable over processes with the same output as one process (each batch is sampled from
its own seed, derived from `seed` and its rows), and per-row scores, decisions, a summary and `rif_metrics.json`
next to the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.data.curation import Decision, output_dir_for, run_curation
from trl_ext.evaluation.judges import judge_all, judge_name, resolve_judge
from trl_ext.rewards.offline import as_completion, reward_func_name, score_completions

logger = logging.getLogger(__name__)

# generator(prompts, num_rollouts) -> len(prompts) * num_rollouts completions (texts, or objects with `.text` and
# `.num_tokens` such as `trl_ext.inference.generation.Generation`), the rollouts of a prompt one after another.
Generator = Callable[[list[Any], int], Sequence[Any]]


def instance_stats(rewards: Sequence[float]) -> tuple[float, float]:
    """(acc, var) of one instance's rollout rewards: their mean and population variance (NaN rewards left out)."""
    values = [float(r) for r in rewards if not math.isnan(float(r))]
    if not values:
        return math.nan, math.nan
    acc = sum(values) / len(values)
    return acc, sum((r - acc) ** 2 for r in values) / len(values)


def decide_instance(
    rewards: Sequence[float],
    *,
    drop_all_wrong: bool = True,
    drop_all_correct: bool = True,
    min_acc: float = 0.0,
    max_acc: float = 1.0,
    eps: float = 0.0,
    wrong_reward: float = 0.0,
    correct_reward: float = 1.0,
) -> tuple[bool, str]:
    """Keep or drop one instance from its K rollout rewards, and why (card "Algorithm"): all wrong (every reward <=
    `wrong_reward`) is dropped when `drop_all_wrong`, all correct (every reward >= `correct_reward`) when
    `drop_all_correct`; any other instance whose reward variance is <= `eps` is dropped (no learning signal); then the
    band `[min_acc, max_acc]` applies to what is left. Binary rewards at the defaults: keep iff 0 < acc < 1."""
    acc, var = instance_stats(rewards)
    if math.isnan(acc):
        return False, "no_reward"
    values = [float(r) for r in rewards if not math.isnan(float(r))]
    all_wrong, all_correct = max(values) <= wrong_reward, min(values) >= correct_reward
    if all_wrong and drop_all_wrong:
        return False, "all_wrong"
    if all_correct and drop_all_correct:
        return False, "all_correct"
    if not (all_wrong or all_correct) and var <= eps:
        return False, "no_variance"
    if not min_acc <= acc <= max_acc:
        return False, "outside_acc_band"
    return True, "kept"


def rif_metrics(scores: Sequence[dict[str, Any]], decisions: Sequence[Decision]) -> dict[str, float]:
    """The card's metrics over the instances filtered: rif/kept_frac, rif/all_wrong_frac, rif/all_correct_frac,
    rif/mean_acc (mean of acc over all instances), plus the rollout tokens generated and the truncated share."""
    n = len(scores)
    accs = [s["rif_acc"] for s in scores if s.get("rif_acc") is not None and not math.isnan(s["rif_acc"])]
    rollouts = sum(len(s["rewards"]) for s in scores)
    return {
        "rif/kept_frac": sum(d.kept for d in decisions) / n if n else 0.0,
        "rif/all_wrong_frac": sum(bool(s["all_wrong"]) for s in scores) / n if n else 0.0,
        "rif/all_correct_frac": sum(bool(s["all_correct"]) for s in scores) / n if n else 0.0,
        "rif/mean_acc": sum(accs) / len(accs) if accs else math.nan,
        "rif/rollout_tokens": float(sum(s["rollout_tokens"] for s in scores)),
        "rif/truncated_frac": sum(s["truncated"] for s in scores) / rollouts if rollouts else 0.0,
    }


class JudgeReward:
    """A judge `(prompt, candidate, gold) -> bool` as a GRPO reward: 1.0 when it accepts, gold from `answer_column`."""

    def __init__(self, judge: Callable[..., bool], answer_column: str = "answer") -> None:
        self.judge, self.answer_column = judge, answer_column
        self.__name__ = f"judge:{judge_name(judge)}"

    def __call__(self, prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
        from trl_ext.rewards.toolkit import column, completion_text

        golds = column(kwargs, self.answer_column, self.__name__, len(completions))
        texts = [completion_text(c) or "" for c in completions]
        return [float(v) for v in judge_all(self.judge, list(prompts), texts, golds)]


def _split_names(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):  # "a+b" (inside --transforms, where commas separate transforms) or "a,b"
        return [part.strip() for part in value.replace(",", "+").split("+") if part.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolve_rewards(rewards: Any) -> list[tuple[Any, Callable[..., Any]]]:
    """(record, built reward function) for each of `rewards`: names ("a+b", "a,b" or a list; a list item may be a
    `{"name": ..., option: value}` mapping), resolved like `--rewards` (registered, TRL's, a reward model is refused,
    a dotted path), or callables used as they are (record None)."""
    from trl_ext.rewards.resolve import resolve_reward
    from trl_ext.run.specs import parse_spec

    out = []
    for item in _split_names(rewards):
        if callable(item):
            out.append((None, item))
            continue
        name, options = parse_spec(item)
        record = resolve_reward(name, options)
        built = record.build(**options)
        if not callable(built) or isinstance(built, str):
            raise ValueError(f"rif_rft: {name!r} is a reward model; the filter scores with reward functions only.")
        out.append((record, built))
    return out


def rif_columns(options: dict[str, Any]) -> tuple[str, ...]:
    """The input columns: the prompt, what the rewards read, and the judge's answer column."""
    cols = [options.get("prompt_column", "prompt")]
    for record, _ in resolve_rewards(options.get("rewards")):
        cols += list(getattr(record, "required_columns", ()) or ())
    if options.get("judge") is not None or not options.get("rewards"):
        cols.append(options.get("answer_column", "answer"))
    return tuple(dict.fromkeys(cols))


def _default_generator(model, tokenizer, max_new_tokens: int, temperature: float, top_p: float) -> Generator:
    from trl_ext.inference.generation import generate_completions

    def generator(prompts: list[Any], num_rollouts: int):
        # GRPO's sampling (GRPOConfig: top_k=0, top_p, temperature); all rollouts of the batch in one generate call
        return generate_completions(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                    batch_size=len(prompts), progress=False, num_return_sequences=num_rollouts,
                                    do_sample=True, temperature=temperature, top_p=top_p, top_k=0)  # fmt: skip

    return generator


def _batch_seed(seed: int, prompts: list[Any]) -> int:
    text = json.dumps([seed, prompts], sort_keys=True, default=repr, ensure_ascii=False)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def make_rif_transform(
    model=None,
    tokenizer=None,
    rewards: Any = None,
    judge: str | Callable[..., bool] | None = None,
    reward_weights: Sequence[float] | None = None,
    num_rollouts: int = 8,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    drop_all_wrong: bool = True,
    drop_all_correct: bool = True,
    min_acc: float = 0.0,
    max_acc: float = 1.0,
    eps: float = 0.0,
    wrong_reward: float = 0.0,
    correct_reward: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    prompt_column: str = "prompt",
    answer_column: str = "answer",
    save_rollouts: bool = True,
    source_column: str | None = "task",
    curation_dir: str | None = None,
    model_name_or_path: str | None = None,
    generator: Generator | None = None,
):
    """The `rif_rft` transform: GRPO rows -> the rows whose K rollouts have reward variance (see `decide_instance`),
    with `rif_acc` and `rif_var` added. A rollout's reward is the weighted sum of the rewards (NaN ones left out, as
    GRPOTrainer sums them); without `rewards`, `judge` (default `numeric_match`) on `answer_column` gives 0/1.
    `generator(prompts, num_rollouts)` replaces the model's sampling (tests, an external server)."""
    if model is None and generator is None:
        if model_name_or_path is None:
            raise ValueError("rif_rft samples rollouts with the model about to be trained: pass --model_name_or_path.")
        from trl_ext.models import load_model, load_tokenizer

        model, tokenizer = load_model(model_name_or_path), load_tokenizer(model_name_or_path)
    for name, value in (
        ("num_rollouts", num_rollouts),
        ("max_new_tokens", max_new_tokens),
        ("batch_size", batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"rif_rft: {name}={value!r} must be an integer >= 1.")
    if num_rollouts < 2:
        raise ValueError(f"rif_rft: num_rollouts={num_rollouts} gives no variance to filter on; use >= 2.")
    if not temperature > 0:
        raise ValueError(f"rif_rft: temperature={temperature!r} must be > 0 (greedy rollouts are all equal).")
    if not 0.0 <= min_acc <= max_acc <= 1.0:
        raise ValueError(f"rif_rft: need 0 <= min_acc ({min_acc}) <= max_acc ({max_acc}) <= 1.")
    if eps < 0:
        raise ValueError(f"rif_rft: eps={eps!r} must be >= 0.")
    funcs = [f for _, f in resolve_rewards(rewards)]
    if judge is not None or not funcs:
        funcs.append(JudgeReward(resolve_judge(judge or "numeric_match"), answer_column))
    weights = [1.0] * len(funcs) if reward_weights is None else [float(w) for w in _split_names(reward_weights)]
    if len(weights) != len(funcs):
        raise ValueError(f"rif_rft: {len(weights)} reward_weights for {len(funcs)} rewards (the judge counts last).")
    names = [reward_func_name(f) for f in funcs]
    gen = (
        generator
        if generator is not None
        else _default_generator(model, tokenizer, max_new_tokens, temperature, top_p)
    )
    if generator is None:
        from trl_ext.inference.curation import model_fingerprint

        generator_id = model_fingerprint(model)
    else:
        generator_id = getattr(generator, "__qualname__", type(generator).__qualname__)

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import torch

        prompts = [r[prompt_column] for r in rows]
        with torch.random.fork_rng(devices=[]):  # the batch's own stream: same samples whatever ran before
            torch.manual_seed(_batch_seed(seed, prompts))
            outputs = list(gen(prompts, num_rollouts))
        if len(outputs) != len(rows) * num_rollouts:
            raise ValueError(f"rif_rft: the generator gave {len(outputs)} rollouts for {len(rows)} x {num_rollouts}.")
        texts = [str(getattr(o, "text", o)) for o in outputs]
        lengths = [int(getattr(o, "num_tokens", 0)) for o in outputs]
        owner = [i // num_rollouts for i in range(len(outputs))]
        ids = None
        if tokenizer is not None:
            ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        per_func = score_completions(funcs, [prompts[i] for i in owner],
                                     [as_completion(prompts[i], t) for i, t in zip(owner, texts, strict=True)],
                                     [rows[i] for i in owner], completion_ids=ids)  # fmt: skip
        totals = []
        for values in per_func:  # GRPOTrainer: nansum of the weighted rewards
            present = [w * v for w, v in zip(weights, values, strict=True) if not math.isnan(v)]
            totals.append(sum(present) if present else math.nan)
        out = []
        for i in range(len(rows)):
            k = slice(i * num_rollouts, (i + 1) * num_rollouts)
            rewards_i = totals[k]
            acc, var = instance_stats(rewards_i)
            values = [r for r in rewards_i if not math.isnan(r)]
            record = {
                "rewards": rewards_i,
                "rif_acc": acc,
                "rif_var": var,
                "all_wrong": bool(values) and max(values) <= wrong_reward,
                "all_correct": bool(values) and min(values) >= correct_reward,
                "rollout_tokens": sum(lengths[k]),
                "truncated": sum(n >= max_new_tokens for n in lengths[k]),
                "rewards_per_func": {n: [v[j] for v in per_func[k]] for j, n in enumerate(names)},
            }
            if save_rollouts:
                record["rollouts"] = texts[k]
            out.append(record)
        return out

    def decide(rows: list[dict[str, Any]], scores: list[dict[str, Any]]) -> list[Decision]:
        decisions = []
        for row, s in zip(rows, scores, strict=True):
            kept, reason = decide_instance(
                [math.nan if r is None else r for r in s["rewards"]],
                drop_all_wrong=drop_all_wrong,
                drop_all_correct=drop_all_correct,
                min_acc=min_acc,
                max_acc=max_acc,
                eps=eps,
                wrong_reward=wrong_reward,
                correct_reward=correct_reward,
            )
            new_row = {**row, "rif_acc": s["rif_acc"], "rif_var": s["rif_var"]} if kept else None
            decisions.append(Decision(kept, reason, new_row))
        return decisions

    key = json.dumps(["rif_rft", generator_id, names, weights, num_rollouts, temperature, top_p, max_new_tokens, seed,
                      prompt_column, answer_column, save_rollouts])  # fmt: skip

    def transform(dataset):
        result = run_curation(
            dataset,
            score,
            decide,
            key=hashlib.sha256(key.encode()).hexdigest()[:20],
            batch_size=batch_size,
            directory=output_dir_for("rif_rft", curation_dir),
            source_column=source_column if source_column in dataset.column_names else None,
            desc="rif_rft rollouts",
        )
        transform.summary = rif_metrics(result.scores, result.decisions)
        transform.result = result
        for name, value in transform.summary.items():
            logger.info("%s: %s", name, value)
        if result.directory is not None and int(os.environ.get("RANK", "0")) == 0:
            (result.directory / "rif_metrics.json").write_text(json.dumps(transform.summary, indent=1))
        if len(dataset) and not len(result.dataset):
            raise ValueError(
                f"rif_rft dropped every instance ({result.summary['drop_reasons']}): the model solves all or none of "
                "them at this budget; raise max_new_tokens or num_rollouts, or keep all-wrong/all-correct instances."
            )
        return result.dataset

    transform.summary = {}
    return transform


def rollout_instance_filter(
    model,
    tokenizer,
    dataset,
    reward_funcs: Any = None,
    num_rollouts: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int = 256,
    drop_all_wrong: bool = True,
    drop_all_correct: bool = True,
    min_acc: float = 0.0,
    max_acc: float = 1.0,
    eps: float = 0.0,
    batch_size: int = 8,
    seed: int = 0,
    **options: Any,
):
    """The card's surface: `(filtered_dataset, stats)`; the source dataset is not changed."""
    fn = make_rif_transform(model, tokenizer, rewards=reward_funcs, num_rollouts=num_rollouts,
                            temperature=temperature, max_new_tokens=max_new_tokens, drop_all_wrong=drop_all_wrong,
                            drop_all_correct=drop_all_correct, min_acc=min_acc, max_acc=max_acc, eps=eps,
                            batch_size=batch_size, seed=seed, **options)  # fmt: skip
    out = fn(dataset)
    return out, fn.summary
