"""LoRAMoE (arXiv 2312.09979) as a peft tuner and a method: E LoRA experts per FFN linear mixed by a token-wise
softmax router, trained with a localized balancing loss that pushes world-knowledge samples to one half of the experts
and other tasks to the other. `--adapter loramoe` on any SFT-based method; `trl-ext train loramoe` adds the balance
loss; `import trl_ext` before `PeftModel.from_pretrained` of a saved LoRAMoE adapter. See README.md."""

from trl_ext import Adapter, Dataset, Method, hookimpl
from trl_ext.adapters import PeftTuner
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

_M = "trl_ext_plugins.loramoe"

# Declared to peft through the `trl_ext.peft_tuners` entry point (pyproject.toml): registered once peft is imported.
TUNER = PeftTuner(
    name="loramoe",
    config=f"{_M}.tuner:LoRAMoEConfig",
    model=f"{_M}.tuner:LoRAMoEModel",
    prefix="loramoe_",
    category="additive",
    knob="r",  # every expert's rank: what `trl-ext peft-zoo` solves for a budget
)

# These import torch, peft and TRL: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LoRAMoEConfig": ".tuner",
        "LoRAMoEModel": ".tuner",
        "LoRAMoELinear": ".tuner",
        "routing_record": ".tuner",
        "trainable_count": ".tuner",
        "make_loramoe_adapter": ".adapter",
        "loramoe_config": ".adapter",
        "LoRAMoETrainerConfig": ".config",
        "LoRAMoETrainer": ".trainer",
        "localized_balance_loss": ".loss",
    },
)

ADAPTER_OPTIONS = {
    "num_experts": "experts per targeted linear, E (6, the paper's; even for the balance loss)",
    "r": "rank of each expert (4)",
    "lora_alpha": "experts are scaled by lora_alpha / r (32, official)",
    "lora_dropout": "dropout on the experts' input (0.05, official)",
    "target_modules": "comma-separated linear names (gate_proj,up_proj,down_proj, official)",
    "router_dtype": "router weight and softmax dtype (float32)",
    "adapter_name": "peft adapter name (default); on a model with LoRAMoE adapters, adds another",
}


@hookimpl
def register_adapters(register):
    register(
        Adapter(
            name="loramoe",
            factory=f"{_M}.adapter:make_loramoe_adapter",
            family="parameter-efficient",
            paper=PAPER,
            description="E LoRA experts per FFN linear (gate/up/down) mixed by a float32 token-wise softmax router; "
            "not mergeable. Trainable parameters = sum over targeted linears of E*r*(d_in+d_out) + E*d_in: "
            "L*3*(E*r*(d_in+d_out)+E*d_in) on a Llama FFN, 5,045,760 on SmolLM2-135M (E=6, r=4).",
            options=ADAPTER_OPTIONS,
            example="trl-ext train sft --model_name_or_path smollm2-135m --dataset_name builtin:loramoe_mix "
            "--adapter loramoe:num_experts=6 --learning_rate 2e-4 --max_steps 50",
        )
    )


@hookimpl
def register_methods(register):
    register(
        Method(
            name="loramoe",
            trainer=f"{_M}.trainer:LoRAMoETrainer",
            config=f"{_M}.config:LoRAMoETrainerConfig",
            base="sft",
            family="parameter-efficient",
            paper=PAPER,
            default_dataset="builtin:loramoe_mix",
            optional_columns={
                "task_type": "1 world knowledge / 0 other, per row (the column named by --task_type_column): "
                "without it the balancing loss is skipped, with a warning"
            },
            description="SFT of LoRAMoE experts (wrapped with the default LoRAMoE adapter unless --adapter loramoe "
            "gives options) plus beta * the localized balancing loss on the dataset's task_type column (1: world "
            "knowledge -> experts 0..E/2-1; 0: other tasks -> the rest); beta=0.1, delta=0.1.",
            example="trl-ext train loramoe --model_name_or_path smollm2-135m --dataset_name builtin:loramoe_mix "
            "--learning_rate 2e-4 --max_steps 50",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="loramoe_mix",
            factory=f"{_M}.data:build",
            forms=("sft",),
            family="builtin",
            paper=PAPER,
            description="Closed-book knowledge QA (task_type 1: capitals, arithmetic facts) mixed with format-heavy "
            "instructions (task_type 0: JSON, lists, upper case); 1:5 as in the card's demo. For loramoe.",
            columns={"sft": ("prompt", "completion", "task_type")},
        )
    )


__all__ = ["ADAPTER_OPTIONS", "PAPER", "TUNER"]
