"""past (arXiv:2601.11258): PaST, parametric skill transfer. An RL skill vector v = theta_rl_S - theta_sft_S learned on
a source domain is added to a model only SFT'd on a target domain: theta_final = theta_sft_T + lambda v.

Adds the `SkillVector` utility (full weights and LoRA adapters, the orthogonality diagnostic), the callbacks
`past_extract` (saves v when the source GRPO stage ends) and `past_inject` (adds lambda v when the target SFT stage
ends, accuracy and NLL before/after), the transform `past_subset` (iterative refinement's source subsets), the reward
`normalized_exact_match`, `builtin:past_facts` (a fictional "<name> lives in <city>" world, disjoint source/target
people) and the recipe `past` (`trl-ext train past`). See README.md.
"""

from trl_ext import Callback, Dataset, Recipe, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SkillVector": ".skill_vector",
        "SkillVectorError": ".skill_vector",
        "cosine_report": ".skill_vector",
        "mean_abs_cosine": ".skill_vector",
        "lora_skill_vector": ".skill_vector",
        "inject_lora_skill": ".skill_vector",
        "SkillExtractCallback": ".callbacks",
        "SkillInjectCallback": ".callbacks",
        "PaSTOptions": ".pipeline",
        "past_recipe": ".pipeline",
        "run_past": ".pipeline",
        "normalized_exact_match": ".rewards",
        "build_past_facts": ".data:build",
    },
)

__all__ = [
    "PAPER",
    "PaSTOptions",
    "SkillExtractCallback",
    "SkillInjectCallback",
    "SkillVector",
    "SkillVectorError",
    "build_past_facts",
    "cosine_report",
    "inject_lora_skill",
    "lora_skill_vector",
    "mean_abs_cosine",
    "normalized_exact_match",
    "past_recipe",
    "run_past",
]

_SELECTION = {
    "include": "Only parameters whose name contains one of these ('a|b' or a list; default: all).",
    "exclude": "Parameters whose name contains one of these are left out (default embed_tokens|lm_head; '' for none).",
}


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="past_extract",
            factory="trl_ext_plugins.past.callbacks:SkillExtractCallback",
            family="recipe",
            paper=PAPER,
            options={
                "path": "Where v goes: a file name under the recipe's root, or an absolute path (default "
                "skill_vector.safetensors).",
                "previous": "A previous round's vector added to this stage's delta (iterative refinement; default none).",
                "base_model_name_or_path": "theta_0, for past/mean_abs_cos between dW_sft (start - theta_0) and dW_rl "
                "(default none: not logged).",
                **_SELECTION,
            },
            example="trl-ext train past",
            description="PaST's skill vector: when the stage (the source GRPO run) ends, saves v = final weights - "
            "start weights in float32 (a LoRA stage: the adapter's merged delta) and logs past/skill_norm and, with "
            "the base model, past/mean_abs_cos (mean per-matrix |cos| between the SFT and RL deltas).",
        )
    )
    register(
        Callback(
            name="past_inject",
            factory="trl_ext_plugins.past.callbacks:SkillInjectCallback",
            family="recipe",
            paper=PAPER,
            options={
                "skill_vector": "The vector's file: a name under the recipe's root or an absolute path (default "
                "skill_vector.safetensors).",
                "lam": "lambda in theta_sft_T + lambda v (default 1.0; the paper sweeps 0.5, 1, 1.5).",
                "evaluate": "Measure before and after injecting (default true).",
                "eval_dataset": "Held-out target questions with prompt/answer (default builtin:past_facts).",
                "eval_config": "Its config (default target_qa).",
                "eval_split": "Its split (default test).",
                "num_eval": "Questions scored (default 0: all).",
                "docs_config": "Config of the held-out target documents for the NLL check (default target_docs; "
                "empty: none).",
                "docs_split": "Their split (default test).",
                "max_new_tokens": "Greedy answer length (default 16).",
                "batch_size": "Generation batch size (default 16).",
            },
            example="trl-ext train past",
            description="PaST's injection: when the stage (the target SFT run) ends, before it saves, adds lambda v to "
            "its weights, so the stage's folder holds theta_sft_T + lambda v; logs past/target_acc_before/after "
            "(greedy exact match) and past/target_doc_nll_before/after.",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="past_subset",
            factory="trl_ext_plugins.past.transforms:make_subset",
            family="recipe",
            paper=PAPER,
            options={"part": "Which subset, 1..parts (default 1).", "parts": "K, the number of subsets (default 1)."},
            example="trl-ext transform past_subset:part=2,parts=3 --dataset_name builtin:past_facts",
            description="Subset k of K of a dataset (rows i with i % K == k - 1), for PaST's iterative skill "
            "refinement: the same people's documents and questions in one round.",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="normalized_exact_match",
            factory="trl_ext_plugins.past.rewards:normalized_exact_match.from_options",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("answer",),
            example="trl-ext train past",
            description="1.0 when the whole completion equals the row's answer after SQuAD normalisation (lower case, "
            "no punctuation or articles), else 0.0.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="past_facts",
            factory="trl_ext_plugins.past.data:build",
            forms=("source_docs", "source_qa", "target_docs", "target_qa"),
            family="builtin",
            paper=PAPER,
            description="Fictional people and the city each lives in: 32 source and 16 target people (disjoint "
            "names). Docs: three phrasings per person (train), one held-out phrasing (test). QA: 'Where does <name> "
            "live? Answer with the city.' (train), a rephrased question (test).",
            columns={
                "source_docs": ("text",),
                "target_docs": ("text",),
                "source_qa": ("prompt", "answer", "person"),
                "target_qa": ("prompt", "answer", "person"),
            },
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="past",
            source="trl_ext_plugins.past:recipes/past.yaml",
            paper=PAPER,
            description="PaST: SFT on source docs -> GRPO on source QA (extracts v) -> SFT on target docs from the "
            "base, then theta_sft_T + lambda v.",
        )
    )
