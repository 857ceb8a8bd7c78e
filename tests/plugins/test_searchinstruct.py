"""searchinstruct: the card's tests (expansion parsing and retry, skip_sources, context truncation,
seed_as_instructions, determinism, BM25 on the built-in corpus), the post-processing, the local-model LLM, resume
and 2-process runs of the transform, and the real CLI (`trl-ext transform searchinstruct`)."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.data import load_dataset
from trl_ext.inference.retrieval import BM25Retriever, Doc
from trl_ext.testing import run_cli
from trl_ext_plugins.searchinstruct.data import NOT_IN_CONTEXT, documents, held_out, seeds, template_llm
from trl_ext_plugins.searchinstruct.pipeline import (
    LocalLLM,
    build_context,
    expand,
    is_refusal,
    lenient_questions,
    load_corpus,
    make_searchinstruct_transform,
    parse_questions,
    searchinstruct_build,
)

SEEDS = [f"What is fact {i}?" for i in range(6)]
DATA = "builtin:searchinstruct_world"


class MockLLM:
    """Expansion: `n` questions "<first seed> v<k>" (k counts calls); answer: "Answer: <first context line>"."""

    def __init__(self, expansion_reply=None, fail_after=None):
        self.expand_calls = 0
        self.answer_calls = 0
        self.expansion_reply = expansion_reply
        self.fail_after = fail_after

    def __call__(self, messages, temperature):
        user = messages[-1]["content"]
        if user.startswith("Context:"):
            if self.fail_after is not None and self.answer_calls >= self.fail_after:
                raise RuntimeError("connection lost")
            self.answer_calls += 1
            context = user.split("Context:\n", 1)[1].split("\n\nQuery:", 1)[0]
            return f"Answer: {context.splitlines()[0] if context else ''}"
        self.expand_calls += 1
        if self.expansion_reply is not None:
            return self.expansion_reply
        n = int(messages[0]["content"].split("exactly ")[1].split()[0])
        first = user.splitlines()[0].split(". ", 1)[1]
        return json.dumps({"questions": [f"{first} v{self.expand_calls}.{k}" for k in range(n)]})


class ListRetriever:
    def __init__(self, docs):
        self.docs = docs
        self.queries = []

    def search(self, query, k=10):
        return self.search_batch([query], k)[0]

    def search_batch(self, queries, k=10):
        self.queries += list(queries)
        return [self.docs[:k] for _ in queries]


def _docs(n=4, facebook_at=1):
    return [
        Doc(f"d{i}", f"text {i}", 10.0 - i, "https://facebook.com/p" if i == facebook_at else f"https://site{i}.org")
        for i in range(n)
    ]


# ---- card test 1: expansion parsing ------------------------------------------------------------------------------


def test_card_parse_tolerates_code_fences_and_returns_exactly_n():
    reply = 'Sure!\n```json\n{"questions": ["a?", "b?", "c?", "d?", "e?", "f?", "g?"]}\n```\nDone.'
    assert parse_questions(reply, 5) == ["a?", "b?", "c?", "d?", "e?"]
    assert parse_questions('{"questions": ["  a \n b? ", "c?"]}', 2) == ["a b?", "c?"]
    assert parse_questions('["x?", "y?"]', 2) == ["x?", "y?"]
    assert parse_questions('{"questions": ["a?"]}', 2) is None, "fewer than n is malformed"
    for bad in ("not json", '{"questions": "a?"}', '{"q": [1, 2]', "", None, 5, "```json\n{oops}\n```", "[" * 5000):
        assert parse_questions(bad, 2) is None


def test_card_malformed_expansion_retries_once_then_skips(caplog):
    llm = MockLLM(expansion_reply="I cannot do JSON, sorry")
    questions, calls, error = expand(llm, SEEDS, 5)
    assert questions == [] and calls == 2 and llm.expand_calls == 2 and error
    assert sum("malformed expansion reply" in r.message for r in caplog.records) == 2
    summary = {}
    out = searchinstruct_build(SEEDS, MockLLM(expansion_reply="{broken"), ListRetriever(_docs()), iterations=3,
                               log=summary.update, progress=False)  # fmt: skip
    assert len(out) == 0 and "prompt" in out.column_names
    assert summary["si/expansion_failures"] == 3 and summary["si/expansion_calls"] == 6
    assert summary["si/n_generated"] == 0


def test_lenient_parse_reads_question_lines():
    assert lenient_questions("1. Where is X?\n2) Why Y?\n- Why Y?\nno question", 5) == ["Where is X?", "Why Y?"]
    assert lenient_questions('{"questions": ["a?", "b?"]}', 1) == ["a?"]
    assert lenient_questions("nothing here", 2) is None


# ---- card tests 2 and 3: context ---------------------------------------------------------------------------------


def test_card_skip_sources_keeps_the_others_in_rank_order():
    context, used = build_context(_docs(4, facebook_at=1), k_used=3, skip_sources={"facebook"})
    assert context == "text 0\ntext 2\ntext 3"
    assert [d.doc_id for d in used] == ["d0", "d2", "d3"]
    out = searchinstruct_build(SEEDS[:1], MockLLM(), ListRetriever(_docs(4, facebook_at=1)), number_created=1,
                               skip_sources=["facebook"], k_used=3, conversational=False, progress=False)  # fmt: skip
    assert out[0]["context"] == "text 0\ntext 2\ntext 3"
    assert out[0]["links"] == ["https://site0.org", "https://site2.org", "https://site3.org"]
    assert out[0]["doc_ids"] == ["d0", "d2", "d3"] and out[0]["doc_scores"] == [10.0, 8.0, 7.0]
    assert out[0]["completion"] == "Answer: text 0"


def test_card_context_truncated_to_max_chars():
    long = [Doc("big", "x" * 300_000, 1.0, "s")]
    context, _ = build_context(long)
    assert len(context) == 200_000
    assert len(build_context(long, max_context_chars=10)[0]) == 10
    assert build_context(long, truncate_tokens=lambda t: t[:7])[0] == "x" * 7


# ---- card tests 4 and 5 ------------------------------------------------------------------------------------------


def test_card_seed_as_instructions_makes_no_expansion_call():
    llm = MockLLM()
    retriever = ListRetriever(_docs())
    out = searchinstruct_build(SEEDS, llm, retriever, seed_as_instructions=True, sample_size=4, progress=False)
    assert llm.expand_calls == 0 and llm.answer_calls == 4
    assert len(out) == 4 and len(retriever.queries) == 4
    assert {p[0]["content"] for p in out["prompt"]} <= set(SEEDS), "the seeds themselves are answered"


def test_card_determinism_and_sample_size_larger_than_seeds():
    def run():
        return searchinstruct_build(SEEDS, MockLLM(), ListRetriever(_docs()), iterations=3, sample_size=50,
                                    seed=7, progress=False).to_list()  # fmt: skip

    a, b = run(), run()
    assert a == b and len(a) == 15
    assert all(sorted(r["seed_ids"]) == [str(i) for i in range(6)] for r in a), "all seeds are used"
    other = searchinstruct_build(SEEDS, MockLLM(), ListRetriever(_docs()), iterations=3, sample_size=2, seed=8,
                                 progress=False).to_list()  # fmt: skip
    assert [r["seed_ids"] for r in other] != [r["seed_ids"] for r in a]


def test_card_bm25_on_the_builtin_corpus():
    r = BM25Retriever(load_corpus("builtin:searchinstruct_world"))
    assert r.search("What is the capital of Veloria?", k=1)[0].doc_id == "rule-capital"
    assert r.search("main ingredient of kelp bread", k=1)[0].doc_id == "dish-kelp-bread"


# ---- post-processing and provenance ------------------------------------------------------------------------------


def test_duplicates_seed_copies_and_refusals_are_dropped_with_reasons(tmp_path):
    replies = iter(['{"questions": ["What is fact 0?", "New q?", "new   Q?", "Empty?"]}'])

    class LLM:
        answered = []

        def __call__(self, messages, temperature):
            user = messages[-1]["content"]
            if not user.startswith("Context:"):
                return next(replies)
            query = user.rsplit("Query:\n", 1)[1]
            self.answered.append(query)
            return "The context does not mention it." if query == "Empty?" else "Fine."

    llm = LLM()
    summary = {}
    out = searchinstruct_build(SEEDS, llm, ListRetriever(_docs()), number_created=4, curation_dir=tmp_path,
                               log=summary.update, progress=False)  # fmt: skip
    assert [p[0]["content"] for p in out["prompt"]] == ["New q?"]
    assert llm.answered == ["New q?", "Empty?"], "duplicates and seed copies are not answered"
    records = [json.loads(x) for x in (tmp_path / "answer" / "scores.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in records] == [
        "equals a seed question",
        "kept",
        "duplicate question",
        "answer says not in context",
    ]
    assert records[2]["duplicate_of"] == 1 and records[1]["duplicate_of"] is None
    assert summary["si/n_generated"] == 4 and summary["si/n_kept"] == 1
    assert summary["si/dup_rate"] == 0.5 and summary["si/empty_answer_rate"] == 0.5
    assert summary["si/mean_ctx_chars"] == len("text 0\ntext 1\ntext 2")
    assert json.loads((tmp_path / "expand" / "summary.json").read_text())["rows_out"] == 1


def test_include_context_and_plain_rows():
    out = searchinstruct_build(SEEDS[:1], MockLLM(), ListRetriever(_docs(2)), number_created=1, include_context=True,
                               conversational=False, progress=False)  # fmt: skip
    assert out[0]["prompt"] == "Context:\ntext 0\ntext 1\n\nQuery:\nWhat is fact 0? v1.0"
    closed = searchinstruct_build(SEEDS[:1], MockLLM(), ListRetriever(_docs(2)), number_created=1, progress=False)
    assert closed[0]["prompt"] == [{"role": "user", "content": "What is fact 0? v1.0"}]
    assert "text 0" not in json.dumps(closed[0]["prompt"]), "the context stays out of the closed-book prompt"


def test_refusal_detection():
    assert is_refusal("") and is_refusal(None) and is_refusal("   ") and is_refusal(NOT_IN_CONTEXT)
    assert is_refusal("This is not mentioned in the provided context.")
    assert not is_refusal("Arlen was founded in 1412.")


def test_thread_pool_keeps_order_and_seeds_from_a_file(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_text("\n".join(SEEDS) + "\n\n")
    out = searchinstruct_build(str(path), MockLLM(), ListRetriever(_docs()), seed_as_instructions=True, workers=4,
                               sample_size=6, progress=False)  # fmt: skip
    assert sorted(p[0]["content"] for p in out["prompt"]) == sorted(SEEDS)
    with pytest.raises(ValueError, match="k_used"):
        searchinstruct_build(SEEDS, MockLLM(), ListRetriever(_docs()), k_used=0)


# ---- built-in data and the template LLM -------------------------------------------------------------------------


def test_builtin_world_is_deterministic_and_held_out_differs_from_seeds():
    a, b = load_dataset("builtin:searchinstruct_world"), load_dataset("builtin:searchinstruct_world")
    assert a["train"].to_list() == b["train"].to_list() and len(a["train"]) == 10 and len(a["test"]) == 30
    assert len(documents()) == 50 and len({d["id"] for d in documents()}) == 50
    assert sum("facebook" in d["source"] for d in documents()) >= 10
    assert not {r["question"].lower() for r in held_out()} & {r["question"].lower() for r in seeds()}
    corpus = " ".join(d["text"] for d in documents())
    assert all(r["gold"] in corpus for r in held_out() + seeds()), "every answer is in the corpus"
    assert load_dataset("builtin:searchinstruct_world", "sft")["train"][0]["completion"][0]["role"] == "assistant"


def test_template_pipeline_builds_grounded_pairs():
    r = BM25Retriever(load_corpus("builtin:searchinstruct_world"))
    out = searchinstruct_build(load_dataset("builtin:searchinstruct_world")["train"], template_llm(), r,
                               iterations=6, sample_size=5, progress=False)  # fmt: skip
    assert len(out) >= 10
    for row in out:
        answer = row["completion"][0]["content"]
        assert answer in row["context"], "the answer is a sentence of the retrieved context"


# ---- the local model as LLM --------------------------------------------------------------------------------------


def test_local_llm_batches_and_truncates_by_tokens(tiny_model_dir):
    from trl_ext.models import load_model, load_tokenizer

    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    llm = LocalLLM(model, tok, max_new_tokens=4, max_context_tokens=5)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "Context:\nabc\n\nQuery:\nq"}]
    one = llm(messages, 0.1)
    assert isinstance(one, str) and llm.batch([messages, messages], 0.1) == [one, one]
    cut = llm.truncate_context("word " * 50)
    assert len(tok(cut, add_special_tokens=False)["input_ids"]) <= 5
    assert llm.truncate_context("short") == "short"
    fn = make_searchinstruct_transform(model, tok, seed_as_instructions=True, sample_size=2, max_new_tokens=4)
    out = fn(Dataset.from_list([{"question": s} for s in SEEDS]))
    assert fn.summary["si/n_generated"] == 2 and len(out) <= 2


# ---- resume, sharding, CLI ---------------------------------------------------------------------------------------


def test_interrupted_build_resumes_to_the_same_output(tmp_path):
    kwargs = {"iterations": 4, "batch_size": 3, "progress": False}
    ref = searchinstruct_build(SEEDS, MockLLM(), ListRetriever(_docs()), curation_dir=tmp_path / "ref", **kwargs)
    assert len(ref) == 20
    with pytest.raises(RuntimeError, match="connection lost"):
        searchinstruct_build(SEEDS, MockLLM(fail_after=7), ListRetriever(_docs()), curation_dir=tmp_path / "run",
                             **kwargs)  # fmt: skip
    assert len(list((tmp_path / "run" / "answer" / "batches").iterdir())) == 2
    resumed = MockLLM()
    out = searchinstruct_build(SEEDS, resumed, ListRetriever(_docs()), curation_dir=tmp_path / "run", **kwargs)
    assert resumed.expand_calls == 0, "the expansions were finished and are not repeated"
    assert resumed.answer_calls == 20 - 6, "only the unfinished batches are answered again"
    assert out.to_list() == ref.to_list()
    for stage in ("expand", "answer"):
        for name in ("scores.jsonl", "summary.json"):
            assert (tmp_path / "run" / stage / name).read_text() == (tmp_path / "ref" / stage / name).read_text()


def _write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for d in documents():
        (folder / f"{d['id']}.txt").write_text(d["text"])
    return folder


def _cli_args(model_dir, docs, out):
    return ["transform", "searchinstruct", "--model_name_or_path", model_dir, "--dataset_name",
            "builtin:searchinstruct_world", "--split", "train", "--llm", "template", "--iterations", "4",
            "--sample_size", "5", "--batch_size", "4", "--documents", str(docs), "--output", str(out)]  # fmt: skip


def test_cli_transform_writes_provenance_and_resumes(tiny_model_dir, tmp_path, capsys):
    docs = _write_docs(tmp_path / "docs")
    out = tmp_path / "si.jsonl"
    assert main(_cli_args(tiny_model_dir, docs, out)) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and set(rows[0]) == {"prompt", "completion", "context", "links", "doc_ids", "doc_scores", "seed_ids"}
    assert all(r["doc_ids"][0].endswith(".txt") and len(r["doc_scores"]) == 3 for r in rows)
    printed = capsys.readouterr().out
    assert f"si/n_kept: {len(rows)}" in printed and "si/n_generated: 20" in printed
    record = tmp_path / "si.jsonl.curation" / "searchinstruct" / "train"
    assert (record / "answer" / "summary.json").exists() and (record / "expand" / "scores.jsonl").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in (record / "answer" / "batches").iterdir()}
    first = out.read_text()
    out.unlink()
    assert main(_cli_args(tiny_model_dir, docs, out)) == 0 and out.read_text() == first
    assert {p.name: p.stat().st_mtime_ns for p in (record / "answer" / "batches").iterdir()} == stamps


def _torchrun(model_dir, docs, out, nproc):
    run_cli(*_cli_args(model_dir, docs, out), nproc=nproc)


@pytest.mark.slow
def test_torchrun_transform_equals_one_process(tiny_model_dir, tmp_path):
    docs = _write_docs(tmp_path / "docs")
    _torchrun(tiny_model_dir, docs, tmp_path / "one" / "si.jsonl", 1)
    _torchrun(tiny_model_dir, docs, tmp_path / "two" / "si.jsonl", 2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "si.jsonl").read_text() == (one / "si.jsonl").read_text()
    assert (one / "si.jsonl").read_text().strip()
    record = Path("si.jsonl.curation/searchinstruct/train")
    for stage in ("expand", "answer"):
        for name in ("scores.jsonl", "summary.json", "manifest.json"):
            assert (two / record / stage / name).read_text() == (one / record / stage / name).read_text()


def test_cli_training_on_the_built_set_with_its_provenance_columns(tiny_model_dir, tmp_path):
    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", DATA,
                 "--dataset_config", "seeds", "--transforms", "searchinstruct:llm=template:iterations=3:sample_size=5", "--output_dir",
                 str(tmp_path / "run"), "--max_steps", "1", "--per_device_train_batch_size", "2", "--max_length", "128",
                 "--report_to", "none", "--save_strategy", "no"])  # fmt: skip
    assert code == 0
    out = tmp_path / "si.jsonl"
    assert main(_cli_args(tiny_model_dir, "builtin:searchinstruct_world", out)) == 0
    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", str(out), "--output_dir",
                 str(tmp_path / "run2"), "--max_steps", "1", "--per_device_train_batch_size", "2", "--max_length",
                 "128", "--report_to", "none", "--save_strategy", "no"])  # fmt: skip
    assert code == 0
