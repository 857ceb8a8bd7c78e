"""AceReason-Nemotron 1.1's rollout-temperature rule as a tool: pick the GRPO sampling temperature whose
temperature-adjusted rollout entropy is about 0.3 (`select_rl_temperature`), watch and optionally re-tune it during
training (the `acereason_temp` callback), the overlong-filtering preset, and the `acereason_temp` recipe. See
README.md."""

from __future__ import annotations

from trl_ext import Callback, Paper, Recipe, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import torch and transformers: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EntropyTargetCallback": ".callback",
        "make_callback": ".callback",
        "NotMonotonicWarning": ".selector",
        "TemperaturePoint": ".selector",
        "check_monotonic": ".selector",
        "choose_temperature": ".selector",
        "entropy_at_temperature": ".selector",
        "measure_entropy": ".selector",
        "rollout_entropy": ".selector",
        "select_rl_temperature": ".selector",
        "overlong_filter_preset": ".presets",
    },
)

PAPER = Paper(
    title="AceReason-Nemotron 1.1: Advancing Math and Code Reasoning through SFT and RL Synergy",
    arxiv="2506.13284",
    citation="""@article{acereason11_2025,
  title   = {{AceReason-Nemotron} 1.1: Advancing Math and Code Reasoning through {SFT} and {RL} Synergy},
  journal = {arXiv preprint arXiv:2506.13284},
  year    = {2025},
  url     = {https://arxiv.org/abs/2506.13284}
}""",
)

__all__ = [
    "PAPER",
    "EntropyTargetCallback",
    "NotMonotonicWarning",
    "TemperaturePoint",
    "check_monotonic",
    "choose_temperature",
    "entropy_at_temperature",
    "make_callback",
    "measure_entropy",
    "overlong_filter_preset",
    "rollout_entropy",
    "select_rl_temperature",
]


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="acereason_temp",
            factory="trl_ext_plugins.acereason_temp.callback:make_callback",
            family="recipe",
            paper=PAPER,
            options={
                "target_entropy": "Target H* of the temperature-adjusted rollout entropy, nats/token (default 0.3).",
                "tol": "Band [H* - tol, H* + tol] counted as on target (default 0.05).",
                "select": "Pick the starting T with the selector on the training prompts before the first rollout "
                "(fresh runs; default false). Table in <output_dir>/acetemp_selection.json.",
                "adaptive": "Re-tune T during training (ours, not the paper's; default false).",
                "check_every": "Steps between checks of the logged entropy (default 10).",
                "patience": "Checks in a row outside the band before T moves (default 3).",
                "step": "How far T moves (default 0.05).",
                "t_min": "Lowest T, for the selector and the re-tune (default 0.6).",
                "t_max": "Highest T (default 1.2).",
                "temperature": "Starting T (default: the run's --temperature, or the selector's choice).",
                "n_prompts": "Selector: probe prompts, the first rows of the training set (default 64).",
                "max_new_tokens": "Selector: rollout length (default the run's max_completion_length).",
                "method": "Selector: bisect (default) or grid {0.6,0.7,0.8,0.85,0.9,1.0,1.1}.",
                "max_evals": "Selector: bisection evaluations (default 6).",
                "seed": "Selector: sampling seed, the same at every T (default 0).",
            },
            example="trl-ext train grpo --dataset_name builtin:arith --rewards chord_answer "
            "--callbacks acereason_temp:select=true:adaptive=true",
            description="GRPO rollout temperature from an entropy target (AceReason 1.1): select T so the rollouts' "
            "temperature-adjusted entropy is ~0.3 before the first rollout, log acetemp/entropy_gap and "
            "acetemp/temperature, optionally re-tune T between generation batches; state saved with checkpoints.",
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="acereason_temp",
            source="trl_ext_plugins.acereason_temp:recipes/acereason_temp.yaml",
            paper=PAPER,
            description="GRPO with the rollout temperature chosen per stage from the entropy target (selector before "
            "the first rollout), a 2-stage length curriculum with the overlong-filtering preset, entropy monitored.",
        )
    )
