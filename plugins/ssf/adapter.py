"""`--adapter ssf`: wrap the loaded model with the SSF tuner before the trainer is built."""

from __future__ import annotations

from typing import Any

from .tuner import DEFAULT_NORMS, DEFAULT_TARGETS, SSFConfig, trainable_count

TARGETS = {"all": (DEFAULT_TARGETS, DEFAULT_NORMS), "linears": (DEFAULT_TARGETS, []), "norms": ([], DEFAULT_NORMS)}


def ssf_config(
    target: str = "all", init: str = "official", init_std: float = 0.02, include_final_norm: bool = False, **extra: Any
) -> SSFConfig:
    if target not in TARGETS:
        raise ValueError(f"ssf: target must be one of {', '.join(TARGETS)}, got {target!r}")
    linears, norms = TARGETS[target]
    return SSFConfig(
        target_modules=list(linears),
        norm_modules=list(norms),
        include_final_norm=include_final_norm,
        init=init,
        init_std=float(init_std),
        task_type="CAUSAL_LM",
        **extra,
    )


def make_ssf_adapter(
    target: str = "all",
    init: str = "official",
    init_std: float = 0.02,
    include_final_norm: bool = False,
    adapter_name: str = "default",
):
    """`fn(model) -> PeftModel` with an SSF adapter; on a PeftModel already carrying SSF adapters it adds one more
    (`add_adapter`) under `adapter_name`, which must then differ from the existing ones."""
    config = ssf_config(target, init, init_std, include_final_norm)

    def apply(model):
        from peft import PeftModel, get_peft_model

        import trl_ext.adapters

        trl_ext.adapters.register_declared()
        if isinstance(model, PeftModel):
            model.add_adapter(adapter_name, config)
            model.set_adapter(adapter_name)
            base = model.get_base_model()
        else:
            expected = trainable_count(model, config)
            model = get_peft_model(model, config, adapter_name=adapter_name)
            base = None
        trainable = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "ssf_" in n)
        if base is None and trainable != expected:
            raise RuntimeError(f"ssf: {trainable} trainable parameters, the card's formula gives {expected}")
        print(
            f"ssf: {trainable:,} trainable parameters = 2 * (sum of the targeted linears' out_features + channels of "
            f"the adapted norms); init={config.init}",
            flush=True,
        )
        return model

    return apply
