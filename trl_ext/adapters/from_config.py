"""`--adapter peft:config=DIR`: wrap the model with a saved peft config (an `adapter_config.json`, e.g. one that
`trl-ext peft-zoo --output` wrote), so any peft method at a matched budget trains under any SFT-based method."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_peft_config(config: str | Path):
    """The `peft.PeftConfig` saved in folder `config` (or the `adapter_config.json` file itself); trl-ext's own
    tuner types (ssf, ...) resolve too."""
    from peft import PeftConfig

    import trl_ext.adapters

    trl_ext.adapters.register_declared()
    path = Path(config).expanduser()
    if path.is_file() and path.name == "adapter_config.json":
        path = path.parent
    if not (path / "adapter_config.json").is_file():
        inside = sorted(p.parent.name for p in path.glob("*/adapter_config.json")) if path.is_dir() else []
        hint = f"; its subfolders with one: {', '.join(inside)}" if inside else ""
        raise FileNotFoundError(f"peft adapter: no adapter_config.json in {str(path)!r}{hint}")
    loaded = PeftConfig.from_pretrained(str(path))
    # PeftConfig.from_pretrained returns the base class's view; the method's own class has its fields and checks
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    cls = PEFT_TYPE_TO_CONFIG_MAPPING[loaded.peft_type]
    return loaded if isinstance(loaded, cls) else cls.from_pretrained(str(path))


def make_peft_adapter(config: str, adapter_name: str = "default"):
    """`fn(model) -> PeftModel` applying the peft config saved in folder `config`; on a PeftModel it adds the
    adapter under `adapter_name` (which must then be new) and makes it the active one."""
    peft_config = load_peft_config(config)

    def apply(model: Any):
        from peft import PeftModel, get_peft_model

        peft_config.inference_mode = False
        if isinstance(model, PeftModel):
            model.add_adapter(adapter_name, peft_config)
            model.set_adapter(adapter_name)
        else:
            model = get_peft_model(model, peft_config, adapter_name=adapter_name)
        from trl_ext.adapters.zoo import budget_of

        trainable, total = budget_of(model)
        kind = str(getattr(peft_config.peft_type, "value", peft_config.peft_type)).split(" ")[0]
        print(f"peft adapter {kind} from {config}: {trainable:,} trainable parameters ({trainable / total:.4%})")
        return model

    return apply
