"""irac_sft's data side: the IRAC distillation (a teacher rewrites each explanation into Issue / Rule / Application /
Conclusion, validated, retried, else the raw explanation is kept and counted) and the rendering of MCQ rows into
prompt/completion SFT rows (format x order, seeded option shuffling with the gold letter remapped, few-shot).

`irac_distill` runs through `trl_ext.data.curation.run_curation` (batched, resumable, shardable; each row's
attempts and validity land in `scores.jsonl`). The teacher is a callable `teacher(prompt) -> str` (a local model
through `model_teacher`, an API wrapper, or `template_teacher`, a rule-based writer that needs no model); a teacher
with a `batch(prompts) -> list[str]` attribute is called once per batch.
"""

from __future__ import annotations

import importlib
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.data.curation import Decision, output_dir_for, run_curation

from .mcq import (
    _STANDALONE,
    LETTERS,
    option_list,
    question_block,
    remap_letters,
    render_prompt,
    render_response,
    shuffle_options,
)

SECTIONS = ("Issue", "Rule", "Application", "Conclusion")

IRAC_PROMPT = """Rewrite the explanation of this bar-exam question in IRAC form.

Question:
{question_block}

Correct answer: ({answer})
Explanation:
{explanation}

Write exactly four labelled sections, each on its own line:
Issue: the legal question raised.
Rule: the rule of law that governs it.
Application: how the rule applies to these facts.
Conclusion: the outcome, naming the correct option as ({answer}).
"""


def irac_prompt(question: str, options: Any, answer: str, explanation: str, template: str = IRAC_PROMPT) -> str:
    return template.format(question_block=question_block(question, options), answer=answer, explanation=explanation)


def irac_sections(text: str) -> dict[str, str]:
    """The text of each labelled section ("Issue:", "Rule:", "Application:", "Conclusion:"; bold or not) found."""
    if not isinstance(text, str):
        return {}
    pattern = re.compile(r"^[\s>*#-]*\**(Issue|Rule|Application|Conclusion)\**\s*:\**", re.IGNORECASE | re.MULTILINE)
    marks = list(pattern.finditer(text))
    out: dict[str, str] = {}
    for j, m in enumerate(marks):
        end = marks[j + 1].start() if j + 1 < len(marks) else len(text)
        name = m.group(1).capitalize()
        out.setdefault(name, text[m.end() : end].strip())
    return out


def conclusion_letters(conclusion: str) -> set[str]:
    """The distinct option letters a conclusion names: "(C)", "C." or "option C" (an article "A court" is not one)."""
    return set(_STANDALONE.findall(conclusion))


def validate_irac(text: str, gold: str) -> tuple[bool, str]:
    """(ok, reason): all four headers present and the Conclusion names exactly one letter, the gold one."""
    sections = irac_sections(text)
    missing = [s for s in SECTIONS if not sections.get(s)]
    if missing:
        return False, f"missing {', '.join(missing)}"
    letters = conclusion_letters(sections["Conclusion"])
    if len(letters) != 1:
        return False, f"the conclusion names {len(letters)} letters"
    (letter,) = letters
    if letter != gold:
        return False, f"the conclusion names {letter}, the gold answer is {gold}"
    return True, "ok"


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", str(text).strip()) if s.strip()]


def template_teacher(prompt: str) -> str:
    """A rule-based IRAC writer (no model) for prompts built from `IRAC_PROMPT`: Issue = the question's last
    sentence, Rule = the explanation's first sentence, Application = the rest, Conclusion = the gold option."""
    question = re.search(r"Question:\n(.*?)\nA\. ", prompt, re.DOTALL)
    answer = re.search(r"Correct answer: \(([A-D])\)", prompt)
    explanation = re.search(r"Explanation:\n(.*?)\n\nWrite exactly", prompt, re.DOTALL)
    if not (question and answer and explanation):
        return ""
    letter = answer.group(1)
    option = re.search(rf"^{letter}\. (.*)$", prompt, re.MULTILINE)
    asked = _sentences(question.group(1))
    issue = asked[-1] if asked else question.group(1).strip()
    sents = _sentences(explanation.group(1))
    rule = sents[0] if sents else ""
    application = " ".join(sents[1:]) or rule
    choice = option.group(1).rstrip(".") if option else ""
    return (
        f"Issue: {issue}\nRule: {rule}\nApplication: {application}\n"
        f"Conclusion: The correct answer is ({letter}): {choice}."
    )


def model_teacher(model, tokenizer, max_new_tokens: int = 256, batch_size: int = 8, temperature: float | None = None):
    """A teacher backed by a local causal LM (`trl_ext.inference.generation.generate`, chat template, greedy unless
    `temperature`); batched when `irac_distill` gives it a batch."""
    from trl_ext.inference.generation import generate

    def batch(prompts: list[str]) -> list[str]:
        messages = [[{"role": "user", "content": p}] for p in prompts]
        return generate(model, tokenizer, messages, max_new_tokens, batch_size, progress=False,
                        temperature=temperature)  # fmt: skip

    def teacher(prompt: str) -> str:
        return batch([prompt])[0]

    teacher.batch = batch
    return teacher


def resolve_teacher(teacher: Any, model=None, tokenizer=None, **model_options: Any) -> Callable[[str], str]:
    """A teacher from a callable, "template", "model" (the given or `teacher_model` model), or "module:function"."""
    if callable(teacher):
        return teacher
    if teacher == "template":
        return template_teacher
    if teacher == "model":
        if model is None:
            raise ValueError("irac_distill: teacher=model needs --teacher_model NAME (or a loaded model).")
        return model_teacher(model, tokenizer, **model_options)
    if isinstance(teacher, str) and ":" in teacher:
        module, _, name = teacher.partition(":")
        return getattr(importlib.import_module(module), name)
    raise ValueError(f"irac_distill: teacher must be a callable, 'template', 'model' or 'module:function', "
                     f"got {teacher!r}")  # fmt: skip


def _ask(teacher: Callable[[str], str], prompts: list[str]) -> list[str]:
    if not prompts:
        return []
    batch = getattr(teacher, "batch", None)
    texts = list(batch(prompts)) if batch is not None else [teacher(p) for p in prompts]
    return [t if isinstance(t, str) else "" for t in texts]


def make_irac_distill_transform(
    teacher: Any = "template",
    max_retries: int = 1,
    teacher_model: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    source_column: str = "domain",
    curation_dir: str | None = None,
    prompt_template: str = IRAC_PROMPT,
):
    """The `irac_distill` transform: adds `irac_explanation` (the teacher's validated IRAC text, or the raw
    explanation after `max_retries` failed retries) and `irac_ok`."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"irac_distill: max_retries must be an integer >= 0, got {max_retries!r}")
    model = tokenizer = None
    if teacher == "model" and teacher_model is not None:
        from trl_ext.models import load_model, load_tokenizer

        model, tokenizer = load_model(teacher_model), load_tokenizer(teacher_model)
    ask = resolve_teacher(teacher, model, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size)

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        golds = [str(r["answer"]).strip().upper() for r in rows]
        prompts = [irac_prompt(r["question"], r["options"], g, r["explanation"], prompt_template)
                   for r, g in zip(rows, golds, strict=True)]  # fmt: skip
        texts = [""] * len(rows)
        verdicts: list[tuple[bool, str]] = [(False, "not asked")] * len(rows)
        attempts = [0] * len(rows)
        pending = list(range(len(rows)))
        for _ in range(max_retries + 1):
            if not pending:
                break
            for i, text in zip(pending, _ask(ask, [prompts[i] for i in pending]), strict=True):
                attempts[i] += 1
                texts[i], verdicts[i] = text.strip(), validate_irac(text, golds[i])
            pending = [i for i in pending if not verdicts[i][0]]
        return [{"irac_ok": ok, "irac_reason": reason, "attempts": n, "irac_text": text}
                for text, (ok, reason), n in zip(texts, verdicts, attempts, strict=True)]  # fmt: skip

    def decide(rows: list[dict[str, Any]], scores: list[dict[str, Any]]) -> list[Decision]:
        out = []
        for row, s in zip(rows, scores, strict=True):
            text = s["irac_text"] if s["irac_ok"] else row["explanation"]
            out.append(Decision(True, "kept", {**row, "irac_explanation": text, "irac_ok": bool(s["irac_ok"])}))
        return out

    name = teacher if isinstance(teacher, str) else getattr(teacher, "__qualname__", type(teacher).__qualname__)
    key = "|".join(map(str, ("irac_distill", name, teacher_model, max_retries, max_new_tokens, prompt_template)))

    def transform(dataset):
        result = run_curation(
            dataset,
            score,
            decide,
            key=key,
            batch_size=batch_size,
            directory=output_dir_for("irac_distill", curation_dir),
            source_column=source_column if source_column in dataset.column_names else None,
            desc="irac_distill",
        )
        n = len(result.scores)
        ok = sum(bool(s["irac_ok"]) for s in result.scores)
        transform.summary = {
            "irac/rows": n,
            "irac/ok": ok,
            "irac/fallback_raw": n - ok,
            "irac/retried": sum(s["attempts"] > 1 for s in result.scores),
        }
        transform.result = result
        return result.dataset

    transform.summary = {}
    return transform


def irac_distill(ds, teacher: Any, max_retries: int = 1, **options: Any):
    """The card's surface: `ds` (question, options, answer, explanation) -> `ds` + irac_explanation, irac_ok."""
    return make_irac_distill_transform(teacher, max_retries, **options)(ds)


def _row_seed(seed: int, index: int) -> int:
    return seed * 1_000_003 + index


def render_mcq_sft(
    ds,
    order: str = "explanation_first",
    fmt: str = "json",
    use_irac: bool = True,
    few_shot: int = 0,
    shuffle: bool = True,
    seed: int = 0,
    conversational: bool = True,
    keep_columns: Sequence[str] = ("domain", "answer"),
):
    """MCQ rows -> prompt/completion rows. The explanation is `irac_explanation` when `use_irac` and present (run
    `irac_distill` first), else `explanation`. With `shuffle` each row's options are permuted (seeded by `seed` and
    the row index) and the gold letter and the "(X)" letters of the explanation remapped. `few_shot` k prepends the
    k first other rows as worked examples. `answer` in the output is the (remapped) gold letter."""
    rows = ds.to_list()
    rendered = []
    for i, row in enumerate(rows):
        gold = str(row["answer"]).strip().upper()
        if gold not in LETTERS:
            raise ValueError(f"render_mcq_sft: row {i} has answer {row['answer']!r}, not a letter A-D")
        explanation = row.get("irac_explanation") if use_irac and row.get("irac_explanation") else row["explanation"]
        options = option_list(row["options"])
        if shuffle:
            options, gold, mapping = shuffle_options(options, gold, random.Random(_row_seed(seed, i)))
            explanation = remap_letters(str(explanation), mapping)
        rendered.append((row["question"], options, gold, str(explanation)))
    out = []
    for i, (question, options, gold, explanation) in enumerate(rendered):
        shots = [(question_block(q, o), render_response(g, e, fmt, order))
                 for j, (q, o, g, e) in enumerate(rendered) if j != i][:few_shot]  # fmt: skip
        prompt = render_prompt(question, options, fmt, order, shots)
        completion = render_response(gold, explanation, fmt, order)
        new = {
            "prompt": [{"role": "user", "content": prompt}] if conversational else prompt,
            "completion": [{"role": "assistant", "content": completion}] if conversational else completion,
        }
        for col in keep_columns:
            if col in rows[i]:
                new[col] = rows[i][col]
        new["answer"] = gold
        out.append(new)
    from datasets import Dataset

    return Dataset.from_list(out)


def make_render_transform(**options: Any):
    """The `irac_render` transform (options as `render_mcq_sft`)."""
    return lambda ds: render_mcq_sft(ds, **options)


def make_sample_transform(k: int = 20, seed: int = 0, domain_column: str = "domain"):
    """The `irac_sample` transform: k rows per domain (stratified, seeded)."""
    from .mcq import sample_per_domain

    return lambda ds: sample_per_domain(ds, k, seed, domain_column)
