"""SSF: Scaling & Shifting Your Features (arXiv 2210.08823) as a peft tuner. A learned per-channel scale and shift
after every attention/MLP linear and every decoder norm of a frozen model; it folds into the weights on merge, so the
merged model has the base architecture (plus biases). `--adapter ssf` on any SFT-based method; `import trl_ext` before
`PeftModel.from_pretrained` of a saved SSF adapter. See README.md."""

from trl_ext import Adapter, hookimpl
from trl_ext.adapters import PeftTuner
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# Declared to peft through the `trl_ext.peft_tuners` entry point (pyproject.toml): registered once peft is imported.
TUNER = PeftTuner(
    name="ssf",
    config="trl_ext_plugins.ssf.tuner:SSFConfig",
    model="trl_ext_plugins.ssf.tuner:SSFModel",
    prefix="ssf_",
    category="additive",
)

# These import torch and peft: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SSFConfig": ".tuner",
        "SSFModel": ".tuner",
        "SSFLinear": ".tuner",
        "SSFNorm": ".tuner",
        "trainable_count": ".tuner",
        "make_ssf_adapter": ".adapter",
        "ssf_config": ".adapter",
    },
)


@hookimpl
def register_adapters(register):
    register(
        Adapter(
            name="ssf",
            factory="trl_ext_plugins.ssf.adapter:make_ssf_adapter",
            family="parameter-efficient",
            paper=PAPER,
            description="A learned per-channel scale and shift (y = gamma*x + beta) after q/k/v/o/gate/up/down and "
            "the two decoder norms; mergeable into the weights. Trainable parameters = 2 * (sum of the targeted "
            "linears' out_features + hidden * adapted norms): 380,160 on SmolLM2-135M.",
            options={
                "target": "all (linears and norms, default), linears, or norms",
                "init": "official (scale ~ N(1, std^2), shift ~ N(0, std^2), default) or identity (1 and 0)",
                "init_std": "standard deviation of the official init (0.02)",
                "include_final_norm": "also adapt the final norm (false; its shift cannot be merged on Llama)",
                "adapter_name": "peft adapter name (default); on a model with SSF adapters, adds another",
            },
            example="trl-ext train sft --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--adapter ssf --learning_rate 2e-3 --max_steps 50",
        )
    )


__all__ = ["PAPER", "TUNER", "SSFConfig", "SSFLinear", "SSFModel", "SSFNorm", "make_ssf_adapter", "ssf_config"]
