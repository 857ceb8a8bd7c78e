"""One optimizer step of each named SFT-loss method on a fixed global batch of 4, under an engine; writes
{method: loss and weight update} (or {method: {"error": ...}}) to argv[1].

Usage: `sharded_step.py OUT ENGINE METHOD...` with ENGINE one of `none` (one process, batch 4), `zero2`, `zero3`
(DeepSpeed, run with DS_ACCELERATOR=cpu), `fsdp2` (torch `fully_shard`), the last three under
`torchrun --nproc_per_node 2` with 2 rows per process. tests/test_sharded_engines.py compares the engines with one
process. Several methods run in one process to pay the start-up once."""

import json
import sys
import time
import traceback

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model

from trl_ext.testing import (
    SGD_STEP_ARGS,
    deepspeed_config,
    shard_trainer_with_fsdp2,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)

out_path, engine, methods = sys.argv[1], sys.argv[2], sys.argv[3:]
world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
per_device = 4 // world


def perturbed(module: torch.nn.Module, scale: float = 0.05) -> None:
    """Move a reference/teacher away from the policy, so its term and gradient are not zero."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))


def lora(model):
    torch.manual_seed(1)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():  # LoRA B starts at zero; give it values so every LoRA weight has a gradient
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model


def tool_rows():
    tools = json.dumps([{"name": "get_weather"}, {"name": "get_wind"}, {"name": "search"}])
    targets = [
        "get_weather(city='Oslo')",
        "search(query='a long query', limit='3')",
        "get_wind(city='Lima')",
        "Sunny.",
    ]
    return [
        {"prompt": [{"role": "user", "content": f"Request {i}"}], "completion": [{"role": "assistant", "content": t}]}
        | {"tools": tools}
        for i, t in enumerate(targets)
    ]


def code_rows():
    codes = ["def f(x):\n    y = x + 1\n    return y", "a = 1\nb = a * 2", "print(3 + 4)", "x = [1, 2]\nx.append(3)"]
    wrong = ["def f(x):\n    y = x - 1\n    return y", "a = 1\nb = a / 2", "print(3 - 4)", "x = [1, 2]\nx.pop()"]
    return [
        {
            "prompt": [{"role": "user", "content": f"Write snippet {i}."}],
            "completion": [{"role": "assistant", "content": c}],
            "incorrect_completions": [w],
        }
        for i, (c, w) in enumerate(zip(codes, wrong, strict=True))
    ]


def scored_rows():
    return [
        row | {"poft_ref_scores": [s, s - 1.0]} for row, s in zip(uneven_rows(), [-0.5, -2.0, -4.0, -6.0], strict=True)
    ]


def build(method: str, args: dict):
    """(trainer, hook run after building it) for a method."""
    rows, model, extra, fields = uneven_rows(), tiny_model(), {}, {}
    if method in ("asft", "asft_lora"):
        from trl_ext_plugins.asft import ASFTConfig as Config
        from trl_ext_plugins.asft import ASFTTrainer as Trainer

        fields = {"kl_weight": 0.1}
        if method == "asft_lora":
            model = lora(model)
    elif method == "otr":
        from trl_ext_plugins.otr import OTRConfig as Config
        from trl_ext_plugins.otr import OTRTrainer as Trainer

        fields = {"otr_estimator": "expected", "otr_temperature": 1.3, "otr_beta": -0.1}
    elif method == "ift":
        from trl_ext_plugins.ift import IFTConfig as Config
        from trl_ext_plugins.ift import IFTTrainer as Trainer
    elif method == "curiosft":
        from trl_ext_plugins.curiosft import CurioSFTConfig as Config
        from trl_ext_plugins.curiosft import CurioSFTTrainer as Trainer
    elif method == "lfu":
        from trl_ext_plugins.lfu import LfUConfig as Config
        from trl_ext_plugins.lfu import LfUTrainer as Trainer

        model = lora(model)
        fields = {"lfu_alpha": 0.5, "lfu_lambda": 5.0, "lfu_aux_batch_size": 2}
        aux = [
            {"prompt": [{"role": "user", "content": "Colour?"}], "completion": [{"role": "assistant", "content": c}]}
            for c in ("Blue, like the sky.", "Red.")
        ]
        extra = {"aux_dataset": Dataset.from_list(aux)}
    elif method == "fait":
        from trl_ext_plugins.fait import FAITConfig as Config
        from trl_ext_plugins.fait import FAITTrainer as Trainer

        rows = code_rows()
    elif method == "pkt":
        from trl_ext_plugins.tl_training import PKTConfig as Config
        from trl_ext_plugins.tl_training import PKTTrainer as Trainer

        rows, fields = tool_rows(), {"warmup_steps": 0, "weight_decay": 0.0}
    elif method == "poft":
        from trl_ext_plugins.poft import PoFTConfig as Config
        from trl_ext_plugins.poft import PoFTTrainer as Trainer

        rows = scored_rows()
    elif method == "soft":
        from trl_ext_plugins.soft import SoFTConfig as Config
        from trl_ext_plugins.soft import SoFTTrainer as Trainer

        model = tiny_model(num_layers=4)
        fields = {"soft_layers": [1, 3, 4], "soft_layer_weights": [1.0, 2.0, 1.0]}
    else:
        raise ValueError(f"unknown method {method}")
    config = Config(
        output_dir=f"/tmp/sharded-{engine}-{method}",
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=1,
        gradient_checkpointing=False,
        shuffle_dataset=False,
        **SGD_STEP_ARGS,
        **args,
        **fields,
    )
    trainer = Trainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer(), **extra
    )
    if method == "asft":
        perturbed(trainer.ref_model)
    if engine == "fsdp2":
        shard_trainer_with_fsdp2(trainer)
    return trainer


engine_args = {"zero2": {"deepspeed": deepspeed_config(2)}, "zero3": {"deepspeed": deepspeed_config(3)}}.get(
    engine, {}
)
results = {}
for method in methods:
    start = time.time()
    try:
        results[method] = train_one_sharded_step(build(method, engine_args))
        print(f"{method} on {engine}: {time.time() - start:.1f} s", file=sys.stderr)
    except Exception as error:  # noqa: BLE001 - reported to the test, which names the method and engine
        results[method] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-2500:]}
if int(__import__("os").environ.get("RANK", "0")) == 0:
    with open(out_path, "w") as f:
        json.dump(results, f)
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
