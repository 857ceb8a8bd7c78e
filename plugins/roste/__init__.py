"""RoSTE (arXiv 2502.09003): quantisation-aware SFT. The model is rotated (RMSNorm folding + Hadamard R1 offline,
R2/R4 per layer where they lower the measured W4A4 quantisation error, R3 online for the KV cache) and every decoder
Linear computes Q_a(x) Q_w(W)^T with K/V fake-quantised; full-parameter SFT then trains the latent weights through the
straight-through estimator. `trl-ext train roste`. See README.md."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import torch and TRL: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RoSTEConfig": ".config",
        "RoSTESpec": ".config",
        "RoSTETrainer": ".trainer",
        "RoSTELinear": ".transform",
        "apply_roste": ".transform",
        "choose_site": ".transform",
        "export_quantized": ".transform",
        "load_roste_model": ".transform",
        "search_rotations": ".transform",
        "site_errors": ".transform",
        "fake_quantize": ".quant",
        "quant_params": ".quant",
        "hadamard": ".rotations",
        "rotation_matrix": ".rotations",
    },
)

_M = "trl_ext_plugins.roste"


@hookimpl
def register_methods(register):
    register(
        Method(
            name="roste",
            trainer=f"{_M}.trainer:RoSTETrainer",
            config=f"{_M}.config:RoSTEConfig",
            base="sft",
            family="recipe",
            paper=PAPER,
            # its folders need the rotations and quantisers installed again (`trl-ext evaluate`, compare, recipes)
            output_marker="roste_state.json",
            load_output=f"{_M}.transform:load_roste_model",
            description="Quantisation-aware full-parameter SFT (W4A4KV4 by default): Hadamard rotations (R1 folded, "
            "R2/R4 chosen per layer by measured quantisation error, R3 online) and straight-through fake "
            "quantisation of weights, activations and the KV cache; exports Q_w-quantised weights.",
            example="trl-ext train roste --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--max_steps 50",
        )
    )


__all__ = [
    "PAPER",
    "RoSTEConfig",
    "RoSTELinear",
    "RoSTESpec",
    "RoSTETrainer",
    "apply_roste",
    "choose_site",
    "export_quantized",
    "fake_quantize",
    "hadamard",
    "load_roste_model",
    "quant_params",
    "rotation_matrix",
    "search_rotations",
    "site_errors",
]
