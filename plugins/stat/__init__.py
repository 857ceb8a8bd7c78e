"""STAT: Skill-Targeted Adaptive Training (arXiv 2510.10023). Find the validation questions the student gets wrong,
have a teacher name the skills it failed to apply (the Missing-Skill-Profile), and rebuild the SFT set around them:
STAT-Sel reweights the training pool, STAT-Syn has the teacher write new questions. A data transform on the
curation runner; see README.md."""

from __future__ import annotations

from trl_ext import Dataset, Paper, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import datasets and torch: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ArithTeacher": ".build",
        "CachedTeacher": ".build",
        "StatEmptyError": ".build",
        "build_msp": ".build",
        "consistency_filter": ".build",
        "default_judge": ".build",
        "detect_difficulty": ".build",
        "make_stat_transform": ".build",
        "model_teacher": ".build",
        "normalize_skill": ".build",
        "parse_skills": ".build",
        "sel_draw": ".build",
        "stat_build": ".build",
        "subsample": ".build",
    },
)

PAPER = Paper(
    title="Skill-Targeted Adaptive Training",
    arxiv="2510.10023",
    citation="""@inproceedings{stat2026,
  title     = {Skill-Targeted Adaptive Training},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2026},
  url       = {https://arxiv.org/abs/2510.10023}
}""",
)

OPTIONS = {
    "val_dataset": "Where the student is tested (required): a dataset name or path with `problem` and `answer`, "
    "e.g. builtin:stat_skills. Its questions never enter the output.",
    "val_split": "Split of val_dataset (default validation).",
    "val_config": "Config / form of val_dataset (default: its default).",
    "mode": "'sel' (reweight the pool towards the missing skills) or 'syn' (teacher-written questions) (default sel).",
    "teacher": "'arith' (rule-based teacher for builtin:stat_skills, default), 'module:callable' (any "
    "teacher(prompt) -> str), or a local model name/path (greedy chat generation).",
    "teacher_slip_rate": "arith teacher: share of its solutions that are off by 1 or 2 (ours; default 0).",
    "teacher_max_new_tokens": "Local-model teacher: tokens per reply (ours; default 256).",
    "scorer": "'module:callable' score(problem, response) -> float, e.g. a PRM's minimum step score; a response's "
    "score is min(scorer, answer correct). Default: the answer check alone.",
    "judge": "A shared judge name (numeric_match, exact_match) or 'module:callable' judge(problem, response, answer) "
    "-> bool (default: number after 'The answer is' equals the gold answer, trl_ext.data.arith.is_correct).",
    "n_hard": "At most this many hard validation questions, the lowest-scoring (paper: 500).",
    "skills_min": "Diagnosis asks for skills_min-skills_max missing skills (paper: 2).",
    "skills_max": "... and keeps at most skills_max of those named (paper: 3).",
    "per_skill": "Sel: pool questions drawn per (hard question, missing skill) (paper: 5).",
    "answers_per_q": "Solutions per question: Sel: the gold one + teacher ones the judge accepts; Syn: teacher "
    "solutions before the consistency filter (paper: 3).",
    "target_size": "Subsample to at most this many (question, solution) rows (paper: 9500).",
    "difficulty_threshold": "A question is hard when its score < this (paper's PRM default: 0.5).",
    "seed": "Seed of the draws and the subsample (default 0).",
    "catalogue": "Comma-separated skill catalogue (default: the teacher writes it from 20 pool questions).",
    "skills_column": "Pool column with each question's skill labels; absent: the teacher labels every question "
    "(default skills).",
    "n_samples": "Student responses per validation question (ours; default 1 = greedy; >1 samples at temperature).",
    "temperature": "Sampling temperature when n_samples > 1 (default 1.0).",
    "max_new_tokens": "Student tokens per validation answer (ours; default 48).",
    "instruction": "Appended to each problem in the student's prompt and in the output prompts.",
    "conversational": "Chat-message prompts and completions (default true).",
    "batch_size": "Validation questions per student batch; also the unit of resumption (default 16).",
    "curation_dir": "Where to keep scores, decisions, the teacher cache and stat.json outside `trl-ext transform "
    "--output`.",
}

__all__ = [
    "OPTIONS",
    "PAPER",
    "ArithTeacher",
    "CachedTeacher",
    "StatEmptyError",
    "build_msp",
    "consistency_filter",
    "default_judge",
    "detect_difficulty",
    "make_stat_transform",
    "model_teacher",
    "normalize_skill",
    "parse_skills",
    "sel_draw",
    "stat_build",
    "subsample",
]


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="stat",
            family="data",
            needs_model=True,
            paper=PAPER,
            description="STAT: the model (student) answers a validation set (batched, resumable, shardable); a "
            "teacher names the skills it missed on the hard questions (the Missing-Skill-Profile); the training "
            "pool is reweighted towards them (mode sel) or the teacher writes new questions kept by answer "
            "consistency (mode syn). Emits prompt, completion, stat_skill, stat_origin.",
            required_columns=("problem", "solution", "answer"),
            options=OPTIONS,
            example="trl-ext transform stat --dataset_name builtin:stat_skills --split train --val_dataset "
            "builtin:stat_skills --target_size 300 --output stat_sft.jsonl",
            factory="trl_ext_plugins.stat.build:make_stat_transform",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="stat_skills",
            factory="trl_ext_plugins.stat.data:build",
            forms=("problems", "sft"),
            family="builtin",
            paper=PAPER,
            description="Arithmetic problems with skill labels (add, subtract, multiply, carry, parentheses, "
            "fractions), 7 kinds balanced: 700 train (pool), 140 validation, 140 test. For stat.",
            columns={
                "problems": ("problem", "solution", "answer", "skills", "kind"),
                "sft": ("prompt", "completion", "answer", "skills", "kind"),
            },
        )
    )
