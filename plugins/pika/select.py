"""PiKa's selection (card steps 4-5 and the dedup): score k candidate responses per expert instruction with a reward,
drop duplicates and instructions whose best response is too weak, keep the hardest `n_keep`, and emit the SFT row
(instruction, best response) or the preference pair (best, worst) when the margin is large enough.

The `pika` transform runs this through `trl_ext.data.curation.run_curation` (batched, resumable, shardable, per-row
scores and decisions saved next to the output), scoring each candidate by its token-mean log-probability under the
model (`trl_ext.inference.curation.loglik_scores`) minus an optional length penalty: the card's stand-in reward
model. `pika_build` runs the whole pipeline from personas with user-supplied LLM and reward callables.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trl_ext.data.curation import Decision, output_dir_for, run_curation

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_instruction(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed: "What is X?" and "what is x" are the same text."""
    return " ".join(_PUNCT.sub(" ", str(text).lower()).split())


def duplicate_of(texts: Sequence[str]) -> list[int | None]:
    """For each text, the index of the first earlier text with the same normalised form, else None."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for i, text in enumerate(texts):
        key = normalize_instruction(text)
        out.append(first.get(key))
        first.setdefault(key, i)
    return out


@dataclass(frozen=True)
class Selection:
    """One instruction's candidates reduced to PiKa's choices (argmax/argmin take the first index on ties)."""

    best: int
    worst: int
    best_reward: float
    worst_reward: float
    mean_reward: float

    @property
    def margin(self) -> float:
        return self.best_reward - self.worst_reward

    @property
    def difficulty(self) -> float:
        return -self.mean_reward


def select_responses(rewards: Sequence[float]) -> Selection:
    if not rewards:
        raise ValueError("An instruction needs at least one scored response.")
    values = [float(r) for r in rewards]
    best = max(range(len(values)), key=lambda j: (values[j], -j))
    worst = min(range(len(values)), key=lambda j: (values[j], j))
    return Selection(best, worst, values[best], values[worst], sum(values) / len(values))


def hardest(mean_rewards: Sequence[float], n_keep: int | None, candidates: Sequence[int] | None = None) -> list[int]:
    """The `n_keep` indices (among `candidates`, default all) with the lowest mean reward, in their original order;
    ties keep the earlier index."""
    pool = list(range(len(mean_rewards)) if candidates is None else candidates)
    if n_keep is None or n_keep >= len(pool):
        return sorted(pool)
    return sorted(sorted(pool, key=lambda i: (mean_rewards[i], i))[: max(n_keep, 0)])


def decide(
    instructions: Sequence[str],
    rewards: Sequence[Sequence[float]],
    *,
    n_keep: int | None = None,
    min_best_score: float | None = None,
    min_margin: float = 0.0,
    keep_hardest: bool = True,
    preferences: bool = False,
    dedup: bool = True,
) -> list[tuple[bool, str]]:
    """(kept, reason) per instruction, in order: duplicates (of an earlier instruction), then `min_best_score`, then
    the `n_keep` hardest (or the first `n_keep` without `keep_hardest`), then, for preference pairs, `min_margin`
    (and a pair needs two distinct responses)."""
    selections = [select_responses(r) for r in rewards]
    dups = duplicate_of(instructions) if dedup else [None] * len(instructions)
    reasons: list[str | None] = [None] * len(instructions)
    for i, (sel, dup) in enumerate(zip(selections, dups, strict=True)):
        if dup is not None:
            reasons[i] = f"duplicate of row {dup}"
        elif min_best_score is not None and sel.best_reward < min_best_score:
            reasons[i] = f"best reward {sel.best_reward:.4g} < min_best_score {min_best_score:g}"
    alive = [i for i, r in enumerate(reasons) if r is None]
    if keep_hardest:
        chosen = set(hardest([s.mean_reward for s in selections], n_keep, alive))
    else:
        chosen = set(alive if n_keep is None else alive[:n_keep])
    for i in alive:
        if i not in chosen:
            reasons[i] = f"not among the n_keep={n_keep} {'hardest' if keep_hardest else 'first'}"
        elif preferences and selections[i].best == selections[i].worst:
            reasons[i] = "no distinct chosen/rejected pair"
        elif preferences and selections[i].margin < min_margin:
            reasons[i] = f"margin {selections[i].margin:.4g} < min_margin {min_margin:g}"
    return [(r is None, r or "kept") for r in reasons]


def _text(prompt: Any) -> str:
    """The instruction text of a prompt given as a string or a list of messages (its last user message)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return str(prompt)


def _as_prompt(prompt: Any, conversational: bool) -> Any:
    if conversational and isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return prompt


def _as_completion(response: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": response}] if conversational else response


def output_rows(
    row: dict[str, Any], sel: Selection, form: str, prompt_column: str, responses_column: str, conversational: bool
) -> dict[str, Any]:
    """The kept row: `prompt` + `completion` (form "sft") or `prompt` + `chosen` + `rejected` (form "dpo"), plus the
    row's other columns except the responses and the persona (the persona must not leak into training data)."""
    responses = row[responses_column]
    rest = {k: v for k, v in row.items() if k not in (prompt_column, responses_column, "persona", "rewards")}
    prompt = _as_prompt(row[prompt_column], conversational)
    if form == "sft":
        return {"prompt": prompt, "completion": _as_completion(responses[sel.best], conversational), **rest}
    return {
        "prompt": prompt,
        "chosen": _as_completion(responses[sel.best], conversational),
        "rejected": _as_completion(responses[sel.worst], conversational),
        **rest,
    }


def make_pika_transform(
    model=None,
    tokenizer=None,
    form: str = "sft",
    prompt_column: str = "prompt",
    responses_column: str = "responses",
    rewards_column: str | None = None,
    n_keep: int | None = None,
    min_best_score: float | None = None,
    min_margin: float = 0.0,
    keep_hardest: bool = True,
    dedup: bool = True,
    length_penalty: float = 0.0,
    conversational: bool = True,
    batch_size: int = 8,
    max_length: int | None = 1024,
    source_column: str = "domain",
    curation_dir: str | None = None,
    model_name_or_path: str | None = None,
):
    """The `pika` transform: rows (`prompt`, `responses`: k candidates[, `domain`]) -> SFT or DPO rows.

    Reward of a candidate: `rewards_column` (precomputed reward-model scores, one list per row) when given, else its
    token-mean log-prob under `model` as SFT would see it (chat template when `conversational`) minus
    `length_penalty` x its token count.
    """
    if form not in ("sft", "dpo"):
        raise ValueError(f"form must be 'sft' or 'dpo', got {form!r}.")
    if rewards_column is None and model is None:
        if model_name_or_path is None:
            raise ValueError("pika scores responses with a model: pass --model_name_or_path, or --rewards_column.")
        from trl_ext.models import load_model, load_tokenizer

        model, tokenizer = load_model(model_name_or_path), load_tokenizer(model_name_or_path)

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if rewards_column is not None:
            rewards = [[float(x) for x in row[rewards_column]] for row in rows]
            lengths = [[len(str(r).split()) for r in row[responses_column]] for row in rows]
        else:
            from trl_ext.inference.curation import loglik_scores

            prompts, responses, owner = [], [], []
            for i, row in enumerate(rows):
                for response in row[responses_column]:
                    prompts.append(_as_prompt(row[prompt_column], conversational))
                    responses.append(_as_completion(str(response), conversational))
                    owner.append(i)
            scored = loglik_scores(
                model, tokenizer, prompts, responses, batch_size=batch_size * 4, max_length=max_length
            )
            rewards = [[] for _ in rows]
            lengths = [[] for _ in rows]
            for i, s in zip(owner, scored, strict=True):
                mean = s["mean_logprob"] if s["num_tokens"] else -1e9
                rewards[i].append(mean - length_penalty * s["num_tokens"])
                lengths[i].append(s["num_tokens"])
        out = []
        for r, n in zip(rewards, lengths, strict=True):
            if not r:
                out.append({"rewards": [], "margin": None})
                continue
            sel = select_responses(r)
            out.append(
                {
                    "rewards": r,
                    "best_index": sel.best,
                    "worst_index": sel.worst,
                    "best_reward": sel.best_reward,
                    "worst_reward": sel.worst_reward,
                    "mean_reward": sel.mean_reward,
                    "margin": sel.margin,
                    "difficulty": sel.difficulty,
                    "chosen_length": n[sel.best],
                    "rejected_length": n[sel.worst],
                }
            )
        return out

    def decide_rows(rows: list[dict[str, Any]], scores: list[dict[str, Any]]) -> list[Decision]:
        valid = [i for i, s in enumerate(scores) if s.get("rewards")]
        verdicts = decide(
            [_text(rows[i][prompt_column]) for i in valid],
            [scores[i]["rewards"] for i in valid],
            n_keep=n_keep,
            min_best_score=min_best_score,
            min_margin=min_margin,
            keep_hardest=keep_hardest,
            preferences=form == "dpo",
            dedup=dedup,
        )
        by_row = dict(zip(valid, verdicts, strict=True))
        decisions = []
        for i, row in enumerate(rows):
            if i not in by_row:
                decisions.append(Decision(False, "no candidate responses"))
                continue
            kept, reason = by_row[i]
            reason = re.sub(r"duplicate of row (\d+)", lambda m: f"duplicate of row {valid[int(m.group(1))]}", reason)
            new = output_rows(
                row, select_responses(scores[i]["rewards"]), form, prompt_column, responses_column, conversational
            )
            decisions.append(Decision(kept, reason, new if kept else None))
        return decisions

    key = "|".join(
        map(str, ("pika", form, rewards_column, length_penalty, conversational, max_length, prompt_column,
                  responses_column, n_keep, min_best_score, min_margin, keep_hardest, dedup))
    )  # fmt: skip

    def transform(dataset):
        result = run_curation(
            dataset,
            score,
            decide_rows,
            key=key,
            batch_size=batch_size,
            directory=output_dir_for("pika", curation_dir),
            source_column=source_column if source_column in dataset.column_names else None,
            desc="pika",
        )
        transform.summary = pika_summary(dataset.to_list(), result.scores, result.decisions, source_column)
        transform.result = result
        return result.dataset

    transform.summary = {}
    return transform


def pika_summary(
    rows: Sequence[dict[str, Any]],
    scores: Sequence[dict[str, Any]],
    decisions: Sequence[Decision],
    source_column: str = "domain",
) -> dict[str, Any]:
    """The card's logged values: pika/n_instructions, pika/kept, pika/mean_best_reward, pika/mean_margin (over the
    kept rows), the chosen/rejected lengths (reward models' length bias) and pika/domain_frac/<d> of the kept rows."""
    kept = [i for i, d in enumerate(decisions) if d.kept]

    def mean(key: str) -> float:
        values = [scores[i][key] for i in kept if scores[i].get(key) is not None]
        return sum(values) / len(values) if values else float("nan")

    out: dict[str, Any] = {
        "pika/n_instructions": len(rows),
        "pika/kept": len(kept),
        "pika/mean_best_reward": mean("best_reward"),
        "pika/mean_margin": mean("margin"),
        "pika/mean_chosen_length": mean("chosen_length"),
        "pika/mean_rejected_length": mean("rejected_length"),
    }
    domains = Counter(str(rows[i].get(source_column)) for i in kept if source_column in rows[i])
    for domain, count in sorted(domains.items()):
        out[f"pika/domain_frac/{domain}"] = count / len(kept)
    return out


PERSONA_PROMPT = (
    "You are {persona}. Write one challenging, knowledge-intensive request that you would ask an expert assistant "
    "in your field. Include any context needed to answer it; do not ask a yes/no question. Reply with the request only."
)


def _cached(cache: dict[str, Any], fn: Callable, *key_parts: Any) -> Any:
    key = hashlib.sha256(repr(key_parts).encode()).hexdigest()
    if key not in cache:
        cache[key] = fn()
    return cache[key]


def pika_build(
    personas,
    instruct_llm: Callable[[str], str],
    respond_llm: Callable[[str, int], list[str]],
    reward: Callable[[str, str], float],
    n_candidates: int = 4,
    n_keep: int | None = 30000,
    min_best_score: float | None = None,
    min_margin: float = 0.0,
    keep_hardest: bool = True,
    make_preferences: bool = True,
    seed: int = 0,
    n_personas: int | None = None,
    persona_prompt: str = PERSONA_PROMPT,
    cache: dict[str, Any] | None = None,
    model_name: str = "",
    log: Callable[[dict[str, Any]], None] | None = None,
):
    """The whole PiKa pipeline with user-supplied callables -> `(sft_ds, pref_ds)` (`pref_ds` is None without
    `make_preferences`).

    `personas`: a `datasets.Dataset` (or list of dicts) with `persona` and optionally `domain`. Personas with the same
    normalised text are dropped; `n_personas` (default all) are drawn round-robin over domains after a seeded
    shuffle within each domain. Each persona's instruction is `instruct_llm(persona_prompt)`; duplicate instructions
    are dropped; `respond_llm(instruction, n_candidates)` gives the candidates and `reward(instruction, response)`
    scores them. Calls are cached in `cache` by a hash of (prompt, model_name, n, seed). The SFT rows are
    (instruction, best response); the pairs (best, worst) with margin >= `min_margin`. The persona never enters the
    training rows.
    """
    rows = personas.to_list() if hasattr(personas, "to_list") else [dict(p) for p in personas]
    for row in rows:
        if "persona" not in row:
            raise ValueError(f"Every persona row needs a 'persona' column; got {sorted(row)}.")
    seen, unique = set(), []
    for row in rows:
        key = normalize_instruction(row["persona"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    rng = random.Random(seed)
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for row in unique:
        by_domain.setdefault(str(row.get("domain", "")), []).append(row)
    for group in by_domain.values():
        rng.shuffle(group)
    ordered = []
    groups = [by_domain[d] for d in sorted(by_domain)]
    for k in range(max((len(g) for g in groups), default=0)):
        ordered += [g[k] for g in groups if k < len(g)]
    chosen = ordered[:n_personas] if n_personas is not None else ordered
    cache = {} if cache is None else cache
    items = []
    for row in chosen:
        prompt = persona_prompt.format(persona=row["persona"])
        instruction = _cached(cache, lambda p=prompt: instruct_llm(p), "instruct", prompt, model_name, seed).strip()
        items.append({"instruction": instruction, "domain": row.get("domain")})
    dups = duplicate_of([it["instruction"] for it in items])
    items = [it for it, d in zip(items, dups, strict=True) if d is None and it["instruction"]]
    for it in items:
        ins = it["instruction"]
        responses = _cached(cache, lambda i=ins: list(respond_llm(i, n_candidates)), "respond", ins, model_name,
                            n_candidates, seed)  # fmt: skip
        it["responses"] = [str(r) for r in responses]
        it["rewards"] = [float(reward(ins, r)) for r in it["responses"]]
    items = [it for it in items if it["responses"]]
    from datasets import Dataset

    def build(preferences: bool):
        verdicts = decide(
            [it["instruction"] for it in items],
            [it["rewards"] for it in items],
            n_keep=n_keep,
            min_best_score=min_best_score,
            min_margin=min_margin,
            keep_hardest=keep_hardest,
            preferences=preferences,
            dedup=False,  # already removed
        )
        out = []
        for it, (kept, _) in zip(items, verdicts, strict=True):
            if kept:
                sel = select_responses(it["rewards"])
                row = {"prompt": it["instruction"], "responses": it["responses"], "domain": it["domain"]}
                new = output_rows(row, sel, "dpo" if preferences else "sft", "prompt", "responses", True)
                new["reward"] = sel.best_reward
                if preferences:
                    new["margin"] = sel.margin
                out.append(new)
        return Dataset.from_list(out) if out else None

    sft, pref = build(False), build(True) if make_preferences else None
    if log is not None:
        kept = sft.to_list() if sft is not None else []
        stats = {
            "pika/n_personas": len(chosen),
            "pika/n_instructions": len(items),
            "pika/kept": len(kept),
            "pika/mean_best_reward": sum(r["reward"] for r in kept) / len(kept) if kept else float("nan"),
            "pika/mean_margin": (sum(pref["margin"]) / len(pref) if pref is not None and len(pref) else float("nan")),
        }
        for domain, count in sorted(Counter(str(r["domain"]) for r in kept).items()):
            stats[f"pika/domain_frac/{domain}"] = count / len(kept)
        log(stats)
    return sft, pref
