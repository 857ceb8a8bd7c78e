"""STAT's pipeline (card steps 1-4): skill catalogue and labels, difficulty detection on the validation split,
the Missing-Skill-Profile (MSP), and the new training set by STAT-Sel (reweighting the pool towards the missing
skills) or STAT-Syn (teacher-written questions, kept by answer consistency).

The student's pass over the validation set (the expensive, model-bound part) runs through
`trl_ext.data.curation.run_curation`: batched, with a progress bar, resumable per batch and shardable under
torchrun. Every teacher call is cached by a hash of (teacher name, prompt), in memory and, with a directory, in
`teacher_cache.jsonl`, so reruns are deterministic and cheap. The teacher is any `teacher(prompt) -> str` (an API
client, `model_teacher(...)` for a local model, or `ArithTeacher` for `builtin:stat_skills`); a teacher with a
`batch(prompts) -> replies` method is called in batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from trl_ext.data.curation import Decision, output_dir_for, run_curation

Teacher = Callable[[str], str]
INSTRUCTION = "Show the steps and end with 'The answer is N.'"

CATALOGUE_PROMPT = (
    "You are writing a skill catalogue for a task. Here are example questions from its training set:\n"
    "{examples}\n"
    "List the distinct skills a student needs to solve questions like these. "
    "Reply with a comma-separated list of short lower-case skill names."
)
LABEL_PROMPT = (
    "Skill catalogue: {catalogue}\n"
    "Question: {question}\n"
    "Which skills from the catalogue does this question need? Reply with a comma-separated list of skill names "
    "from the catalogue only."
)
DIAGNOSE_PROMPT = (
    "Skill catalogue: {catalogue}\n"
    "Question: {question}\n"
    "Reference answer: {answer}\n"
    "Student response: {response}\n"
    "The student did not solve this question. Name the {low}-{high} skills from the catalogue that the student failed "
    "to apply. Reply with a comma-separated list of skill names from the catalogue only."
)
SYNTH_PROMPT = (
    "Skill catalogue: {catalogue}\n"
    "Target skill: {skill}\n"
    "Example questions that need this skill:\n"
    "{examples}\n"
    "Write {n} new questions in the same style that need the skill {skill}. "
    "Reply with one question per line, each line starting with 'Question:'."
)
SOLVE_PROMPT = (
    "Question: {question}\nWrite worked solution {k} of {n} to this question and end with 'The answer is N.'"
)


class StatEmptyError(ValueError):
    """The MSP is empty: the student found no validation question hard, so STAT has nothing to target."""


# ---------------------------------------------------------------- skills


def normalize_skill(text: str) -> str:
    """Lower-case, every run of non-alphanumerics one underscore, none at the ends: "Carry / borrow" -> "carry_borrow"."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def parse_skills(reply: str, catalogue: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Skill names in a teacher's reply (comma, semicolon or line separated, bullets and numbering ignored),
    normalised and de-duplicated in order -> (accepted, rejected). With a catalogue, names outside it are rejected."""
    allowed = {normalize_skill(s) for s in catalogue} if catalogue is not None else None
    accepted, rejected = [], []
    for part in re.split(r"[,;\n]", str(reply)):
        part = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", part)
        name = normalize_skill(part)
        if not name or name in accepted:
            continue
        if allowed is not None and name not in allowed:
            rejected.append(name)
        else:
            accepted.append(name)
    return accepted, rejected


def build_msp(missing: Iterable[Iterable[str]]) -> dict[str, int]:
    """The Missing-Skill-Profile: MSP(s) = number of hard questions whose missing skills m(q) contain s (a skill
    named twice for one question counts once). Keys in descending count, then name."""
    counts: Counter[str] = Counter()
    for skills in missing:
        counts.update({normalize_skill(s) for s in skills if normalize_skill(s)})
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def sel_draw(
    msp: Mapping[str, int], pool_skills: Sequence[Iterable[str]], per_skill: int = 5, seed: int = 0
) -> list[tuple[int, str]]:
    """STAT-Sel's draw before subsampling: for each skill s (in the MSP's order) and each of its MSP(s) occurrences,
    `per_skill` pool questions whose labels contain s, uniformly without replacement within the draw (all of them
    when fewer exist) and with replacement across draws. Returns (pool index, skill) per drawn question."""
    rng = random.Random(seed)
    labels = [{normalize_skill(s) for s in skills} for skills in pool_skills]
    out: list[tuple[int, str]] = []
    for skill, count in msp.items():
        candidates = [i for i, ks in enumerate(labels) if skill in ks]
        if not candidates:
            continue
        for _ in range(int(count)):
            out += [(i, skill) for i in rng.sample(candidates, min(per_skill, len(candidates)))]
    return out


def consistency_filter(
    solutions: Sequence[str], extract_answer: Callable[[str], Any], min_agree: int = 2
) -> tuple[bool, list[str]]:
    """STAT-Syn's filter: the score of a question is the size of the largest group of solutions whose final answers
    agree (an unparseable answer, None, joins no group; ties go to the group whose answer comes first). Keep the
    question when the score >= `min_agree`, with only the agreeing solutions."""
    answers = [extract_answer(s) for s in solutions]
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return False, []
    top = max(counts.values())
    winner = next(a for a in answers if a is not None and counts[a] == top)
    if top < min_agree:
        return False, []
    return True, [s for s, a in zip(solutions, answers, strict=True) if a == winner]


def subsample(pairs: Sequence[dict], target_size: int, answers_per_q: int = 3, seed: int = 0) -> list[dict]:
    """At most `answers_per_q` pairs per question (`question` key; the first ones), then a uniform sample of
    `target_size` pairs (seeded) when more remain, in their original order."""
    per_q: Counter[str] = Counter()
    capped = []
    for pair in pairs:
        if per_q[pair["question"]] < answers_per_q:
            per_q[pair["question"]] += 1
            capped.append(pair)
    if len(capped) <= target_size:
        return capped
    keep = sorted(random.Random(seed).sample(range(len(capped)), max(target_size, 0)))
    return [capped[i] for i in keep]


# ---------------------------------------------------------------- the teacher


class CachedTeacher:
    """Calls `teacher` once per distinct prompt (key: sha256 of teacher name + prompt); `calls` counts the real
    calls, `asked` the distinct prompts asked (cached or not). With `path`, the replies persist as JSON lines (appended as they come; written only when `write`)."""

    def __init__(self, teacher: Teacher, name: str = "", path: str | os.PathLike | None = None, write: bool = True):
        self.teacher, self.name, self.calls = teacher, name, 0
        self.asked: set[str] = set()  # distinct prompts asked, cached or not
        self.path = Path(path) if path is not None else None
        self.write = write
        self.cache: dict[str, str] = {}
        if self.path is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interruption
                    continue
                self.cache[record["key"]] = record["reply"]

    def key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.name}\x00{prompt}".encode()).hexdigest()

    def __call__(self, prompt: str) -> str:
        return self.many([prompt])[0]

    def many(self, prompts: Sequence[str]) -> list[str]:
        self.asked.update(self.key(p) for p in prompts)
        todo = list(dict.fromkeys(p for p in prompts if self.key(p) not in self.cache))
        if todo:
            batch = getattr(self.teacher, "batch", None)
            replies = list(batch(todo)) if callable(batch) else [self.teacher(p) for p in todo]
            if len(replies) != len(todo):
                raise ValueError(f"The teacher returned {len(replies)} replies for {len(todo)} prompts.")
            self.calls += len(todo)
            lines = []
            for prompt, reply in zip(todo, replies, strict=True):
                self.cache[self.key(prompt)] = str(reply)
                lines.append(json.dumps({"key": self.key(prompt), "reply": str(reply)}) + "\n")
            if self.path is not None and self.write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as f:
                    f.writelines(lines)
        return [self.cache[self.key(p)] for p in prompts]


class ArithTeacher:
    """A rule-based teacher for `builtin:stat_skills` (the card's demonstration: no teacher LLM needed). It reads the
    plugin's own prompts: the catalogue is the task's six skills; a question's labels are the skills of its
    expression; a diagnosis names the failed question's skills (up to 3); a synthesis writes new problems of a kind
    that needs the target skill; a solution is worked exactly, in one of three wordings, except that with
    `slip_rate` > 0 a seeded share of solutions is off by 1 or 2 (to exercise the consistency filter)."""

    def __init__(self, slip_rate: float = 0.0, seed: int = 0):
        self.slip_rate, self.seed = slip_rate, seed

    def _rng(self, prompt: str) -> random.Random:
        return random.Random(int(hashlib.sha256(f"{self.seed}:{prompt}".encode()).hexdigest()[:12], 16))

    def __call__(self, prompt: str) -> str:
        from .data import KINDS, SKILLS, make_problem, skills_of, solve

        questions = re.findall(r"^Question: (.*)$", prompt, flags=re.M)
        if prompt.startswith("You are writing a skill catalogue"):
            return ", ".join(SKILLS)
        if "failed to apply" in prompt or "Which skills" in prompt:
            return ", ".join(skills_of(questions[0])[:3]) if questions else ""
        if target := re.search(r"^Target skill: (.*)$", prompt, flags=re.M):
            skill, n = target[1].strip(), int(re.search(r"Write (\d+) new questions", prompt)[1])
            rng = self._rng(prompt)
            kinds = [k for k in KINDS if skill in skills_of(make_problem(k, random.Random(0)))]
            if not kinds:
                return "I cannot write questions for that skill."
            return "\n".join(f"Question: {make_problem(rng.choice(kinds), rng)}" for _ in range(n))
        if m := re.search(r"Write worked solution (\d+) of", prompt):
            solved = solve(questions[0]) if questions else None
            if solved is None:
                return "I do not know."
            value, steps, _ = solved
            steps = steps.rsplit(" The answer is", 1)[0]
            rng = self._rng(prompt)
            if self.slip_rate and rng.random() < self.slip_rate:
                value += rng.choice([-2, -1, 1, 2])
            wording = [f"{steps} The answer is {value}.", f"We work it out: {steps} So the answer is {value}.",
                       f"Step by step: {steps} The answer is {value}."]  # fmt: skip
            return wording[(int(m[1]) - 1) % 3]
        return ""


def model_teacher(model, tokenizer, max_new_tokens: int = 256, batch_size: int = 8) -> Teacher:
    """A local model as the teacher: greedy chat completions, batched (`teacher.batch(prompts)`)."""
    from trl_ext.inference.generation import generate

    def batch(prompts: Sequence[str]) -> list[str]:
        chats = [[{"role": "user", "content": p}] for p in prompts]
        return generate(model, tokenizer, chats, max_new_tokens, batch_size, progress=False)

    def teacher(prompt: str) -> str:
        return batch([prompt])[0]

    teacher.batch = batch
    return teacher


# ---------------------------------------------------------------- difficulty detection


def student_prompt(problem: str, instruction: str = INSTRUCTION, conversational: bool = True) -> Any:
    text = f"{problem} {instruction}".strip()
    return [{"role": "user", "content": text}] if conversational else text


def default_judge(prompt: Any, response: str, answer: str) -> bool:
    """The default answer check (a `trl_ext.evaluation.judges` judge): the number after the last "The answer is"
    (else the last number) equals the gold answer, as `trl_ext.data.arith.is_correct` reads it."""
    from trl_ext.data.arith import is_correct

    return is_correct(str(response), str(answer))


def default_extract_answer(text: str) -> str | None:
    from trl_ext.data.arith import extract_answer

    return extract_answer(str(text))


def detect_difficulty(
    val,
    student_generate: Callable[[list[Any]], list[Any]],
    *,
    scorer: Callable[[str, str], float] | None = None,
    judge: Callable[[Any, str, str], bool] = default_judge,
    difficulty_threshold: float = 0.5,
    n_hard: int = 500,
    instruction: str = INSTRUCTION,
    conversational: bool = True,
    batch_size: int = 16,
    directory: str | os.PathLike | None = None,
    key: str = "stat-val",
    progress: bool = True,
):
    """Card step 2 through `run_curation`: the student answers each validation question (`student_generate(prompts)
    -> one response, or a list of sampled responses, per prompt`); each response's score is min(scorer(problem,
    response), 1 if `judge(problem, response, answer)` else 0) (without a scorer: the answer check alone; without an
    `answer` column: the scorer alone); a question's score is the mean over its responses. A question is hard when
    its score < `difficulty_threshold`; the `n_hard` lowest-scoring hard ones are kept (ties: earlier row).
    Returns the `CurationResult` (its decisions: kept = hard and kept)."""
    if scorer is None and "answer" not in val.column_names:
        raise ValueError("stat: the validation set needs an `answer` column, or pass a difficulty scorer.")

    def score(rows: list[dict]) -> list[dict]:
        outputs = student_generate([student_prompt(r["problem"], instruction, conversational) for r in rows])
        out = []
        for row, responses in zip(rows, outputs, strict=True):
            responses = [responses] if isinstance(responses, str) else list(responses)
            values, correct = [], []
            for response in responses:
                value = 1.0
                if "answer" in row and row["answer"] is not None:
                    ok = bool(judge(row["problem"], response, str(row["answer"])))
                    correct.append(ok)
                    value = 1.0 if ok else 0.0
                if scorer is not None:
                    value = min(value, float(scorer(row["problem"], response)))
                values.append(value)
            record: dict[str, Any] = {"responses": responses, "difficulty_score": sum(values) / max(len(values), 1)}
            if correct:
                record["correct"] = sum(correct) / len(correct)
            out.append(record)
        return out

    def decide(rows: list[dict], scores: list[dict]) -> list[Decision]:
        hard = [i for i, s in enumerate(scores) if s["difficulty_score"] < difficulty_threshold]
        chosen = set(sorted(hard, key=lambda i: (scores[i]["difficulty_score"], i))[: max(n_hard, 0)])
        decisions = []
        for i, s in enumerate(scores):
            value = s["difficulty_score"]
            if i in chosen:
                decisions.append(Decision(True, f"hard: score {value:.3g} < {difficulty_threshold:g}"))
            elif i in hard:
                decisions.append(Decision(False, f"hard but not among the n_hard={n_hard} lowest"))
            else:
                decisions.append(Decision(False, f"solved: score {value:.3g} >= {difficulty_threshold:g}"))
        return decisions

    return run_curation(val, score, decide, key=key, batch_size=batch_size, directory=directory,
                        source_column="kind" if "kind" in val.column_names else None, desc="stat: student on the "
                        "validation set", progress=progress)  # fmt: skip


# ---------------------------------------------------------------- the builder


def _norm_text(text: str) -> str:
    return " ".join(str(text).lower().split())


def _completion(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else text


def stat_build(
    train,
    val,
    student_generate: Callable[[list[Any]], list[Any]],
    teacher: Teacher,
    scorer: Callable[[str, str], float] | None = None,
    mode: Literal["sel", "syn"] = "sel",
    n_hard: int = 500,
    skills_per_hard: tuple[int, int] = (2, 3),
    per_skill: int = 5,
    answers_per_q: int = 3,
    target_size: int = 9500,
    difficulty_threshold: float = 0.5,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    *,
    judge: Callable[[Any, str, str], bool] = default_judge,
    extract_answer: Callable[[str], Any] = default_extract_answer,
    catalogue: Sequence[str] | None = None,
    skills_column: str | None = "skills",
    catalogue_sample: int = 20,
    n_new: int = 2,
    n_examples: int = 3,
    min_agree: int = 2,
    instruction: str = INSTRUCTION,
    conversational: bool = True,
    batch_size: int = 16,
    teacher_name: str = "",
    val_key: str = "stat-val",
    progress: bool = True,
    log: Callable[[dict[str, Any]], None] | None = None,
    info: dict[str, Any] | None = None,
):
    """The STAT training set from the pool `train` (`problem`, `solution`, `answer`[, `skills_column`]) and the
    validation set `val` (`problem`, `answer`): a `datasets.Dataset` with `prompt`, `completion`, `stat_skill`,
    `stat_origin` ("sel" or "syn"), `answer`, `stat_source` (pool row, -1 for synthesised).

    Steps: the catalogue (`catalogue`, else the teacher's list from `catalogue_sample` pool questions) and the pool's
    labels (`skills_column` when the pool has it, else one teacher call per question; names outside the catalogue
    are rejected); difficulty detection on `val` (see `detect_difficulty`); a diagnosis of each hard question
    (teacher: `skills_per_hard` skills it failed to apply; extra names beyond the upper bound are dropped) and the
    MSP; then STAT-Sel (`sel_draw`, each drawn question with its gold solution plus up to `answers_per_q` - 1
    teacher solutions that the judge accepts against the gold answer) or STAT-Syn (for each (hard question, skill):
    `n_examples` pool questions with the skill, a teacher call for `n_new` new questions, `answers_per_q` teacher
    solutions each, `consistency_filter` with `min_agree`); finally `subsample` to `target_size` pairs. Validation
    questions never enter the output. An empty MSP raises `StatEmptyError`.

    `cache_dir`: the student's finished batches (resume), per-question scores and decisions, the teacher cache and
    `stat.json` (MSP, diagnoses, counts). `info` (a dict), when given, receives the intermediate results.
    """
    from datasets import Dataset

    if mode not in ("sel", "syn"):
        raise ValueError(f"stat: mode must be 'sel' or 'syn', got {mode!r}.")
    low, high = skills_per_hard
    directory = Path(cache_dir) if cache_dir is not None else None
    rank0 = int(os.environ.get("RANK", "0")) == 0
    ask = CachedTeacher(teacher, teacher_name, directory / "teacher_cache.jsonl" if directory else None, rank0)
    pool = train.to_list() if hasattr(train, "to_list") else [dict(r) for r in train]
    for col in ("problem", "solution", "answer"):
        if pool and col not in pool[0]:
            raise ValueError(f"stat: the training pool needs a {col!r} column; it has {sorted(pool[0])}.")
    val_texts = {_norm_text(p) for p in val["problem"]}
    leaked = {i for i, r in enumerate(pool) if _norm_text(r["problem"]) in val_texts}

    # 1. catalogue and labels
    if catalogue is None:
        sample = random.Random(seed).sample(range(len(pool)), min(catalogue_sample, len(pool)))
        examples = "\n".join(f"- {pool[i]['problem']}" for i in sorted(sample))
        catalogue, _ = parse_skills(ask(CATALOGUE_PROMPT.format(examples=examples)))
    catalogue = [normalize_skill(s) for s in catalogue]
    if not catalogue:
        raise ValueError("stat: the skill catalogue is empty (the teacher named no skill).")
    cat_text = ", ".join(catalogue)
    rejected: Counter[str] = Counter()
    if skills_column and pool and skills_column in pool[0]:
        labels = []
        for r in pool:
            ok, bad = parse_skills(",".join(map(str, r[skills_column] or [])), catalogue)
            labels.append(ok)
            rejected.update(bad)
    else:
        replies = ask.many([LABEL_PROMPT.format(catalogue=cat_text, question=r["problem"]) for r in pool])
        labels = []
        for reply in replies:
            ok, bad = parse_skills(reply, catalogue)
            labels.append(ok)
            rejected.update(bad)

    # 2. difficulty detection (the student, through the curation runner)
    result = detect_difficulty(val, student_generate, scorer=scorer, judge=judge,
                               difficulty_threshold=difficulty_threshold, n_hard=n_hard, instruction=instruction,
                               conversational=conversational, batch_size=batch_size, directory=directory,
                               key=val_key, progress=progress)  # fmt: skip
    val_rows = val.to_list()
    hard = [i for i, d in enumerate(result.decisions) if d.kept]

    # 3. diagnoses and the MSP
    prompts = [
        DIAGNOSE_PROMPT.format(
            catalogue=cat_text,
            question=val_rows[i]["problem"],
            answer=val_rows[i].get("answer"),
            response=result.scores[i]["responses"][0] if result.scores[i]["responses"] else "",
            low=low,
            high=high,
        )  # fmt: skip
        for i in hard
    ]
    diagnoses = []
    for i, reply in zip(hard, ask.many(prompts), strict=True):
        ok, bad = parse_skills(reply, catalogue)
        rejected.update(bad)
        diagnoses.append({"index": i, "problem": val_rows[i]["problem"], "missing": ok[:high]})
    msp = build_msp(d["missing"] for d in diagnoses)

    # 4. the new set
    usable = [lab if i not in leaked else [] for i, lab in enumerate(labels)]
    pairs: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    if mode == "sel":
        draw = sel_draw(msp, usable, per_skill, seed)
        order = list(dict.fromkeys(i for i, _ in draw))
        skill_of = {}
        for i, s in draw:
            skill_of.setdefault(i, s)
        extra = max(answers_per_q - 1, 0)
        solve_prompts = [SOLVE_PROMPT.format(question=pool[i]["problem"], k=k + 2, n=answers_per_q)
                         for i in order for k in range(extra)]  # fmt: skip
        replies = iter(ask.many(solve_prompts))
        for i in order:
            solutions = [str(pool[i]["solution"])]
            for _ in range(extra):
                reply = next(replies)
                if judge(pool[i]["problem"], reply, str(pool[i]["answer"])) and reply not in solutions:
                    solutions.append(reply)
            pairs += [{"question": pool[i]["problem"], "solution": s, "answer": str(pool[i]["answer"]),
                       "skill": skill_of[i], "origin": "sel", "source": i} for s in solutions]  # fmt: skip
        stats["stat/drawn"] = len(draw)
    else:
        rng = random.Random(seed)
        tasks = []
        for d in diagnoses:
            for skill in d["missing"]:
                with_skill = [i for i, lab in enumerate(usable) if skill in lab]
                if not with_skill:
                    continue
                ex = sorted(rng.sample(with_skill, min(n_examples, len(with_skill))))
                examples = "\n".join(f"- {pool[i]['problem']}" for i in ex)
                tasks.append((skill, SYNTH_PROMPT.format(catalogue=cat_text, skill=skill, examples=examples, n=n_new)))
        seen = set(val_texts) | {_norm_text(r["problem"]) for r in pool}
        new: list[tuple[str, str]] = []
        for (skill, _), reply in zip(tasks, ask.many([p for _, p in tasks]), strict=True):
            for q in _questions(reply)[:n_new]:
                if _norm_text(q) not in seen:
                    seen.add(_norm_text(q))
                    new.append((q, skill))
        solve_prompts = [SOLVE_PROMPT.format(question=q, k=k + 1, n=answers_per_q)
                         for q, _ in new for k in range(answers_per_q)]  # fmt: skip
        replies = ask.many(solve_prompts)
        kept_q = 0
        for j, (q, skill) in enumerate(new):
            keep, solutions = consistency_filter(replies[j * answers_per_q : (j + 1) * answers_per_q],
                                                 extract_answer, min_agree)  # fmt: skip
            if keep:
                kept_q += 1
                answer = extract_answer(solutions[0])
                pairs += [{"question": q, "solution": s, "answer": str(answer), "skill": skill, "origin": "syn",
                           "source": -1} for s in dict.fromkeys(solutions)]  # fmt: skip
        stats["stat/syn_questions"] = len(new)
        stats["stat/syn_keep_rate"] = kept_q / len(new) if new else 0.0
    chosen = subsample(pairs, target_size, answers_per_q, seed + 1)
    stats = {
        "stat/msp": msp,
        "stat/n_hard": len(hard),
        "stat/val_questions": len(val_rows),
        "stat/unique_questions": len({p["question"] for p in chosen}),
        "stat/rows": len(chosen),
        "stat/teacher_prompts": len(ask.asked),
        "stat/rejected_labels": sum(rejected.values()),
        "stat/leaked_pool_questions_excluded": len(leaked),
        **stats,
    }
    if info is not None:
        info.update(catalogue=catalogue, labels=labels, difficulty=result, diagnoses=diagnoses, msp=msp,
                    pairs=pairs, stats=stats, teacher_calls=ask.calls)  # fmt: skip
    if directory is not None and rank0:
        directory.mkdir(parents=True, exist_ok=True)
        record = {"catalogue": catalogue, "stats": stats, "diagnoses": diagnoses,
                  "rejected_labels": dict(rejected)}  # fmt: skip
        (directory / "stat.json").write_text(json.dumps(record, indent=1))
    if log is not None:
        log(stats)
    if not msp:
        raise StatEmptyError(
            f"stat: the Missing-Skill-Profile is empty ({len(hard)} of {len(val_rows)} validation questions were "
            f"hard at difficulty_threshold={difficulty_threshold}, and their diagnoses named no catalogue skill), "
            "so there is nothing to target. STAT does not fall back to the whole pool: train on the pool directly, "
            "or raise difficulty_threshold / use a harder validation set."
        )
    rows = [
        {"prompt": student_prompt(p["question"], instruction, conversational),
         "completion": _completion(p["solution"], conversational), "stat_skill": p["skill"],
         "stat_origin": p["origin"], "answer": p["answer"], "stat_source": p["source"]}
        for p in chosen
    ]  # fmt: skip
    if not rows:
        raise StatEmptyError(f"stat: the MSP {msp} matched no usable training question (mode {mode}).")
    return Dataset.from_list(rows)


def _questions(reply: str) -> list[str]:
    """The questions in a synthesis reply: the text after each 'Question:' (else each non-empty line)."""
    found = [q.strip() for q in re.findall(r"Question:\s*(.+)", str(reply))]
    if not found:
        found = [re.sub(r"^\s*(?:[-*]|\d+[.)])\s*", "", line).strip() for line in str(reply).splitlines()]
    return [q for q in found if q]


# ---------------------------------------------------------------- the transform


def _import(path: str) -> Any:
    from trl_ext.plugin.lazy import import_object

    return import_object(path)


def make_stat_transform(
    model=None,
    tokenizer=None,
    val_dataset: str | None = None,
    val_split: str = "validation",
    val_config: str | None = None,
    mode: str = "sel",
    teacher: str = "arith",
    teacher_slip_rate: float = 0.0,
    teacher_max_new_tokens: int = 256,
    scorer: str | None = None,
    judge: str | None = None,
    n_hard: int = 500,
    skills_min: int = 2,
    skills_max: int = 3,
    per_skill: int = 5,
    answers_per_q: int = 3,
    target_size: int = 9500,
    difficulty_threshold: float = 0.5,
    seed: int = 0,
    catalogue: str | None = None,
    skills_column: str = "skills",
    n_samples: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 48,
    instruction: str = INSTRUCTION,
    conversational: bool = True,
    batch_size: int = 16,
    curation_dir: str | None = None,
    model_name_or_path: str | None = None,
):
    """The `stat` transform: the split it is applied to is the training pool; `val_dataset` (a dataset name or path,
    its `val_split`) is where the model (the student) is tested. See `stat_build` and the README."""
    if val_dataset is None:
        raise ValueError("stat needs a validation set to find the student's difficulties: pass --val_dataset NAME "
                         "(e.g. builtin:stat_skills) [--val_split validation].")  # fmt: skip
    if model is None:
        from trl_ext.models import load_model, load_tokenizer

        name = model_name_or_path or "smollm2-135m"
        model, tokenizer = load_model(name), load_tokenizer(name)
    from trl_ext.inference.generation import generate

    def student_generate(prompts: list[Any]) -> list[Any]:
        if n_samples <= 1:
            return generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress=False)
        import torch

        torch.manual_seed(seed)
        texts = generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress=False,
                         num_return_sequences=n_samples, temperature=temperature)  # fmt: skip
        return [texts[i * n_samples : (i + 1) * n_samples] for i in range(len(prompts))]

    if teacher == "arith":
        teacher_fn: Teacher = ArithTeacher(slip_rate=teacher_slip_rate, seed=seed)
        teacher_name = f"arith:{teacher_slip_rate}:{seed}"
    elif ":" in teacher and not Path(teacher).exists():
        teacher_fn, teacher_name = _import(teacher), teacher
    else:
        from trl_ext.models import load_model, load_tokenizer

        teacher_fn = model_teacher(load_model(teacher), load_tokenizer(teacher), teacher_max_new_tokens, batch_size)
        teacher_name = f"model:{teacher}:{teacher_max_new_tokens}"
    scorer_fn = _import(scorer) if scorer else None
    from trl_ext.evaluation.judges import resolve_judge

    judge_fn = resolve_judge(judge) if judge else default_judge
    student = model_name_or_path or getattr(model, "name_or_path", "")
    val_key = "|".join(map(str, ("stat-val", student, instruction, conversational, max_new_tokens, n_samples,
                                 temperature if n_samples > 1 else None, seed if n_samples > 1 else None, scorer,
                                 judge)))  # fmt: skip

    def transform(dataset):
        from trl_ext.data import load_dataset

        val = load_dataset(val_dataset, val_config)[val_split]
        info: dict[str, Any] = {}
        out = stat_build(
            dataset, val, student_generate, teacher_fn, scorer=scorer_fn, mode=mode, n_hard=n_hard,
            skills_per_hard=(skills_min, skills_max), per_skill=per_skill, answers_per_q=answers_per_q,
            target_size=target_size, difficulty_threshold=difficulty_threshold, seed=seed,
            cache_dir=output_dir_for("stat", curation_dir), judge=judge_fn,
            catalogue=catalogue.split(",") if catalogue else None, skills_column=skills_column,
            instruction=instruction, conversational=conversational, batch_size=batch_size,
            teacher_name=teacher_name, val_key=val_key, info=info,
        )  # fmt: skip
        transform.summary = {**info["stats"], "stat/teacher_calls": info["teacher_calls"]}
        transform.result = info["difficulty"]
        return out

    transform.summary = {}
    return transform
