"""`SelfEnsembleClassifier`: score a fixed label set over K variants of each input's prompt (other in-context demos,
other templates, or both) and combine the K label distributions (the card's self-ensembling)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .strategies import STRATEGIES, VARIATIONS, ensemble, label_distributions

# Plain-text templates: `{demos}` is where the in-context examples go, `{input}` the text to classify. A demo is the
# same template without `{demos}`, filled with the demo's text and followed by its verbalizer.
TEMPLATES: tuple[str, ...] = (
    "{demos}Review: {input}\nSentiment:",
    "{demos}Text: {input}\nIs the sentiment of this text positive or negative? Answer:",
    "{demos}{input}\nThe sentiment of this review is",
    "{demos}Input: {input}\nLabel:",
    '{demos}Customer feedback: "{input}"\nThe customer\'s opinion is',
)
DEMO_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Variant:
    """One prompt variant: a template and the in-context demos (rows with `text` and `label`) put before the input."""

    template: str
    demos: tuple[Mapping[str, Any], ...] = ()


def check_settings(
    templates: Sequence[str] | str, variation: str, k: int, strategy: str, n_demos: int, batch_size: int
) -> list[str]:
    """The templates as a list, once every setting that needs no data is valid (else a ValueError naming it)."""
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates or any(not isinstance(t, str) or "{input}" not in t for t in templates):
        raise ValueError("templates: each template needs an {input} slot")
    if variation not in VARIATIONS:
        raise ValueError(f"variation={variation!r}: choose one of {', '.join(VARIATIONS)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: choose one of {', '.join(STRATEGIES)}")
    for name, value, low in (("k", k, 1), ("n_demos", n_demos, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    if variation == "prompt" and k > len(templates):
        raise ValueError(f"variation='prompt' with k={k} needs k templates, got {len(templates)}")
    return templates


class SelfEnsembleClassifier:
    """Classifies texts into `labels` ({label: verbalizer}; a list of labels means " label" each) by the summed
    log-probs of each verbalizer's tokens after each of K prompt variants, normalised over the label set, then
    ensembled with `strategy` ("max", "mean" or "vote").

    `variation`: "ic" draws K demo sets of `n_demos` rows from `demo_pool` (the first template); "prompt" uses the
    first K `templates` with one demo set (none when `demo_pool` is None or `n_demos` is 0); "both" pairs demo set k
    with template k mod len(templates). Demo sets are drawn once, with `seed`, and serve every input: the same seed
    gives the same sets and the same predictions. Scoring runs through the core's `option_logprobs` (shared prompt,
    chunked head), `batch_size` sequences per forward.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: Mapping[str, str] | Sequence[str],
        templates: Sequence[str] | str = TEMPLATES,
        demo_pool: Sequence[Mapping[str, Any]] | None = None,
        n_demos: int = 4,
        variation: str = "ic",
        k: int = 5,
        strategy: str = "max",
        renormalize: bool = False,
        seed: int = 0,
        batch_size: int = 32,
        progress: bool = False,
        demo_separator: str = DEMO_SEPARATOR,
    ) -> None:
        self.labels = dict(labels) if isinstance(labels, Mapping) else {str(c): f" {c}" for c in labels}
        if len(self.labels) < 2:
            raise ValueError(f"labels: need at least two classes, got {list(self.labels)}")
        if len(set(self.labels.values())) != len(self.labels):
            raise ValueError(f"labels: two classes share a verbalizer: {self.labels}")
        templates = check_settings(templates, variation, k, strategy, n_demos, batch_size)
        pool = list(demo_pool) if demo_pool is not None else []
        if variation in ("ic", "both") and k > 1 and (not pool or n_demos == 0):
            raise ValueError(f"variation={variation!r} varies the in-context demos: pass a demo_pool and n_demos >= 1")
        if pool and n_demos > len(pool):
            raise ValueError(f"n_demos={n_demos} is more than the {len(pool)} rows of demo_pool")
        unknown = {str(row.get("label")) for row in pool} - set(self.labels)
        if unknown:
            raise ValueError(f"demo_pool has labels outside the label set: {sorted(unknown)}")
        self.model, self.tokenizer = model, tokenizer
        self.templates, self.variation, self.k, self.strategy = templates, variation, k, strategy
        self.renormalize, self.seed, self.batch_size, self.progress = renormalize, seed, batch_size, progress
        self.demo_separator = demo_separator
        rng = random.Random(seed)

        def draw() -> tuple[Mapping[str, Any], ...]:
            return tuple(rng.sample(pool, n_demos)) if pool and n_demos else ()

        if variation == "prompt":
            demos = draw()
            self.variants = [Variant(t, demos) for t in templates[:k]]
        elif variation == "ic":
            self.variants = [Variant(templates[0], draw()) for _ in range(k)]
        else:
            self.variants = [Variant(templates[i % len(templates)], draw()) for i in range(k)]

    @property
    def classes(self) -> list[str]:
        return list(self.labels)

    def render(self, variant: Variant, text: str) -> str:
        """The prompt of `text` under `variant` (the verbalizer follows it)."""
        bare = variant.template.replace("{demos}", "")
        demos = "".join(
            bare.replace("{input}", str(row["text"])) + self.labels[str(row["label"])] + self.demo_separator
            for row in variant.demos
        )
        return variant.template.replace("{demos}", demos).replace("{input}", text)

    def head(self, variant: Variant) -> str:
        """The part of `variant`'s prompts before the input (demos included): the same for every input, so the
        scorer runs it once for many of them."""
        return self.render(variant, "\0").split("\0")[0]

    def prompts(self, text: str) -> list[str]:
        return [self.render(v, text) for v in self.variants]

    def label_logprobs(self, texts: Sequence[str]) -> torch.Tensor:
        """l_k(c) of each text: shape (n, K, C), float64."""
        from trl_ext.inference.scoring import option_logprobs

        prompts = [self.render(v, text) for text in texts for v in self.variants]
        scores = option_logprobs(
            self.model,
            self.tokenizer,
            prompts,
            list(self.labels.values()),
            batch_size=self.batch_size,
            progress=self.progress,
            shared_prefixes=[self.head(v) for _ in texts for v in self.variants],
        )
        return torch.tensor(scores, dtype=torch.float64).view(len(texts), len(self.variants), len(self.labels))

    def variant_proba(self, texts: Sequence[str]) -> torch.Tensor:
        """p_k(c): shape (n, K, C), each row a distribution over the label set."""
        return label_distributions(self.label_logprobs(texts))

    def predict_proba(self, texts: Sequence[str]) -> torch.Tensor:
        """The ensembled distribution over the labels, (n, C) (see `ensemble`)."""
        return ensemble(self.variant_proba(texts), self.strategy, self.renormalize)[2]

    def predict(self, texts: Sequence[str]) -> tuple[list[str], list[float]]:
        """(predicted labels, confidences) under the strategy."""
        pred, conf, _ = ensemble(self.variant_proba(texts), self.strategy, self.renormalize)
        return [self.classes[i] for i in pred.tolist()], conf.tolist()
