"""`--adapter loramoe`: wrap the loaded model with LoRAMoE experts before the trainer is built."""

from __future__ import annotations

from .tuner import LoRAMoEConfig, trainable_count


def loramoe_config(
    num_experts: int = 6,
    r: int = 4,
    lora_alpha: float = 32,
    lora_dropout: float = 0.05,
    target_modules: str | None = None,
    router_dtype: str = "float32",
) -> LoRAMoEConfig:
    """`target_modules`: comma-separated names (default gate_proj,up_proj,down_proj)."""
    kwargs = {} if target_modules is None else {"target_modules": [t.strip() for t in target_modules.split(",")]}
    return LoRAMoEConfig(
        num_experts=int(num_experts),
        r=int(r),
        lora_alpha=float(lora_alpha),
        lora_dropout=float(lora_dropout),
        router_dtype=router_dtype,
        task_type="CAUSAL_LM",
        **kwargs,
    )


def wrap_loramoe(model, config: LoRAMoEConfig, adapter_name: str = "default"):
    """`get_peft_model` with LoRAMoE, checking and printing the trainable count against the card's formula."""
    from peft import get_peft_model

    import trl_ext.adapters

    trl_ext.adapters.register_declared()
    expected = trainable_count(model, config)
    model = get_peft_model(model, config, adapter_name=adapter_name)
    trainable = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "loramoe_" in n)
    if trainable != expected:
        raise RuntimeError(f"loramoe: {trainable} trainable parameters, the card's formula gives {expected}")
    print(
        f"loramoe: {trainable:,} trainable parameters = sum over the targeted linears of E*r*(d_in+d_out) + E*d_in "
        f"(E={config.num_experts}, r={config.r})",
        flush=True,
    )
    return model


def make_loramoe_adapter(
    num_experts: int = 6,
    r: int = 4,
    lora_alpha: float = 32,
    lora_dropout: float = 0.05,
    target_modules: str | None = None,
    router_dtype: str = "float32",
    adapter_name: str = "default",
):
    """`fn(model) -> PeftModel` with a LoRAMoE adapter; on a PeftModel already carrying LoRAMoE adapters it adds one
    more (`add_adapter`) under `adapter_name`, which must then differ from the existing ones."""
    config = loramoe_config(num_experts, r, lora_alpha, lora_dropout, target_modules, router_dtype)

    def apply(model):
        from peft import PeftModel

        if isinstance(model, PeftModel):
            model.add_adapter(adapter_name, config)
            model.set_adapter(adapter_name)
            return model
        return wrap_loramoe(model, config, adapter_name)

    return apply
