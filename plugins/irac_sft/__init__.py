"""irac_sft: SFT for legal multiple-choice reasoning — IRAC distillation of explanations (a teacher callable or a
local model), the rendering of MCQ items into SFT targets (numbered / Markdown / JSON, answer or explanation first,
options shuffled), stratified per-domain sampling, and an MCQ eval callback (accuracy, parse rate, position bias).
Training is plain SFT with LoRA (QLoRA with --load_in_4bit); see README.md and examples/recipes/irac_sft.yaml."""

from __future__ import annotations

from trl_ext import Callback, Dataset, Paper, Recipe, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "IRAC_PROMPT": ".distill",
        "irac_distill": ".distill",
        "irac_prompt": ".distill",
        "irac_sections": ".distill",
        "make_irac_distill_transform": ".distill",
        "model_teacher": ".distill",
        "render_mcq_sft": ".distill",
        "template_teacher": ".distill",
        "validate_irac": ".distill",
        "letter_tv": ".mcq",
        "mcq_metrics": ".mcq",
        "parse_answer": ".mcq",
        "render_prompt": ".mcq",
        "render_response": ".mcq",
        "sample_per_domain": ".mcq",
        "shuffle_options": ".mcq",
        "split_per_domain": ".mcq",
        "MCQEvalCallback": ".callbacks",
    },
)

PAPER = Paper(
    title="A Llama walks into the 'Bar': Efficient Supervised Fine-Tuning for Legal Reasoning in the Multi-state "
    "Bar Exam",
    arxiv="2504.04945",
    citation="""@article{iracsft2025,
  title   = {A Llama walks into the 'Bar': Efficient Supervised Fine-Tuning for Legal Reasoning in the Multi-state
             Bar Exam},
  journal = {arXiv preprint arXiv:2504.04945},
  year    = {2025},
  url     = {https://arxiv.org/abs/2504.04945}
}""",
)

MCQ_COLUMNS = ("question", "options", "answer", "explanation")

__all__ = [
    "IRAC_PROMPT",
    "PAPER",
    "MCQEvalCallback",
    "irac_distill",
    "irac_prompt",
    "irac_sections",
    "letter_tv",
    "make_irac_distill_transform",
    "mcq_metrics",
    "model_teacher",
    "parse_answer",
    "render_mcq_sft",
    "render_prompt",
    "render_response",
    "sample_per_domain",
    "shuffle_options",
    "split_per_domain",
    "template_teacher",
    "validate_irac",
]


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="irac_distill",
            family="recipe",
            paper=PAPER,
            description="A teacher rewrites each explanation into Issue/Rule/Application/Conclusion; validated (4 "
            "headers, the conclusion names exactly the gold letter), retried, else the raw explanation (counted). "
            "Adds irac_explanation, irac_ok; resumable, attempts saved.",
            required_columns=MCQ_COLUMNS,
            options={
                "teacher": "'template' (rule-based, no model; default), 'model' (with teacher_model) or "
                "'module:function' (prompt) -> str.",
                "teacher_model": "teacher=model: a local model name or path (greedy, chat template).",
                "max_retries": "Retries of an invalid IRAC text before falling back to the raw explanation (default 1).",
                "max_new_tokens": "teacher=model: generation length (default 256).",
                "batch_size": "Rows per batch, the unit of resumption (default 8).",
                "curation_dir": "Where to keep the attempts outside `trl-ext transform --output`.",
            },
            example="trl-ext transform irac_distill --dataset_name builtin:irac_mcq --teacher template "
            "--output irac.jsonl",
            factory="trl_ext_plugins.irac_sft.distill:make_irac_distill_transform",
        )
    )
    register(
        Transform(
            name="irac_render",
            family="recipe",
            paper=PAPER,
            description="MCQ rows -> conversational prompt/completion: the answer line and the (IRAC) explanation in "
            "numbered / markdown / json form, answer or explanation first; options shuffled per row (seeded), the gold "
            "letter remapped.",
            required_columns=MCQ_COLUMNS,
            options={
                "fmt": "numbered, markdown or json (default json).",
                "order": "answer_first or explanation_first (default explanation_first).",
                "use_irac": "Use irac_explanation when present (default true).",
                "few_shot": "Worked examples prepended to each prompt (default 0).",
                "shuffle": "Shuffle the options per row, seeded (default true).",
                "seed": "Shuffle seed (default 0).",
            },
            factory="trl_ext_plugins.irac_sft.distill:make_render_transform",
        )
    )
    register(
        Transform(
            name="irac_sample",
            family="recipe",
            paper=PAPER,
            description="Stratified sampling: k rows per domain (all of a smaller domain), seeded, original order.",
            required_columns=lambda options: (options.get("domain_column", "domain"),),
            options={
                "k": "Rows per domain (default 20).",
                "seed": "Seed (default 0).",
                "domain_column": "Domain column (default domain).",
            },  # fmt: skip
            factory="trl_ext_plugins.irac_sft.distill:make_sample_transform",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="mcq_eval",
            factory="trl_ext_plugins.irac_sft.callbacks:MCQEvalCallback",
            family="recipe",
            paper=PAPER,
            options={
                "eval_ds": "MCQ rows (question, options, answer[, domain]) (default builtin:irac_mcq).",
                "split": "Its split (default test).",
                "fmt": "Prompt/answer format: numbered, markdown or json (default json).",
                "order": "answer_first or explanation_first (default explanation_first).",
                "temperature": "0 = greedy (default); else sampled with the same seed per item.",
                "max_new_tokens": "Generation length (default 512).",
                "num_samples": "Items per evaluation (default all).",
                "every_n_steps": "Also evaluate every this many optimizer steps.",
                "at_train_end": "Also evaluate when training ends (default true).",
            },
            description="Generates answers to held-out MCQs -> eval/mcq_acc (unparseable = wrong), eval/parse_rate, "
            "eval/letter_tv (TV distance of predicted vs gold letters), eval/acc/<domain>, eval/pred_frac/<A..D>.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="irac_mcq",
            factory="trl_ext_plugins.irac_sft.data:build",
            forms=("mcq",),
            family="builtin",
            paper=PAPER,
            description="300 synthetic legal-style 4-option MCQs with rule-based answers in 3 domains (limitations "
            "periods, writing requirements, comparative negligence), template rule+application explanations; "
            "80 train + 20 test per domain. For irac_sft.",
            columns={"mcq": ("question", "options", "answer", "explanation", "domain", "id")},
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="irac_sft",
            source="trl_ext_plugins.irac_sft:recipes/irac_sft.yaml",
            paper=PAPER,
            description="IRAC distillation of the explanations, then SFT with LoRA on the legal multiple-choice items, evaluated by mcq_eval.",
        )
    )
