"""peft-fm-survey (arXiv 2501.13787) as a tool: the survey compares PEFT methods by category at budgets that are
often unequal and unreported. The core's `trl-ext peft-zoo` (trl_ext.adapters.zoo) builds any peft method at a matched
trainable-parameter budget; this plugin adds the `peft_budget` callback that logs the budget a run really trains
(and stops it when that is off target). See README.md."""

from trl_ext import Callback, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

__getattr__, __dir__ = lazy_exports(__name__, {"PeftBudgetCallback": ".callback"})


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="peft_budget",
            factory="trl_ext_plugins.peft_fm_survey.callback:PeftBudgetCallback",
            family="parameter-efficient",
            paper=PAPER,
            description="Logs peft/trainable_params, peft/trainable_frac and the survey category of the adapter at "
            "train start; with target_budget it stops a run whose trainable count is more than tol off it.",
            options={
                "target_budget": "Expected trainable parameters: a count, or a fraction of the base model below 1 "
                "(default: none, only log).",
                "tol": "Relative tolerance around target_budget (default 0.05).",
            },
            example="trl-ext train sft --model_name_or_path smollm2-135m --adapter peft:config=zoo/lora "
            "--callbacks peft_budget:target_budget=0.005:tol=0.1 --max_steps 20",
        )
    )


__all__ = ["PAPER", "PeftBudgetCallback"]
