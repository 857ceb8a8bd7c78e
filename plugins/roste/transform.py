"""The RoSTE model transform (card "Rotations" and "Rotation-configuration search") on a Llama-type decoder.

Offline, exact in full precision: RMSNorm weights folded into the Linears that read them; R1 (residual stream,
d x d) into the embeddings, every Linear and lm_head; R2 (per head) into v_proj's outputs and o_proj's inputs; the
weight half of R4 (W_down <- W_down H). Online, in the forward: R4's x <- x H before down_proj, R3 on q and k after
RoPE (cancels in q k^T, only there for the K quantiser), and the fake quantisers: Q_a on every decoder Linear's input
(per token), Q_w on its weight (per output channel), Q_kv on K and V (per head)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trl_ext.compat.attention import wrap_attention

from .config import SITES, RoSTESpec
from .quant import fake_quantize, quantized_weight_linear
from .rotations import block_size, rotate, rotation_matrix

logger = logging.getLogger(__name__)

ROTATION_CONFIG = "rotation_config.json"
ROSTE_STATE = "roste_state.json"
INPUT_SIDE = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj")
OUTPUT_SIDE = ("self_attn.o_proj", "mlp.down_proj")
LINEARS = (*INPUT_SIDE, *OUTPUT_SIDE)
# The search's tie rule: a site whose rotation does not lower the error by more than float rounding stays off
# (an online rotation costs a matmul for nothing).
TIE_RTOL = 1e-9

RotationConfig = dict[int, dict[str, bool]]


class QuantStats:
    """Running sums of the training forwards' quantisation errors (the card's `roste/w_qerr`, `roste/a_qerr`), kept
    on the device and read once per step by `means` (a read per layer would synchronise a GPU 200 times a step)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.w_err, self.w_n, self.a_err, self.a_n = 0.0, 0, 0.0, 0

    def add(self, quantized: torch.Tensor, original: torch.Tensor, weight: bool) -> None:
        """Add sum((Q(t) - t)^2), in one pass without a temporary of t's size."""
        err = torch.dist(quantized.detach().float(), original.detach().float()).square()
        if weight:
            self.w_err, self.w_n = self.w_err + err, self.w_n + original.numel()
        else:
            self.a_err, self.a_n = self.a_err + err, self.a_n + original.numel()

    def means(self) -> dict[str, float]:
        out = {}
        if self.w_n:
            out["roste/w_qerr"] = float(self.w_err) / self.w_n
        if self.a_n:
            out["roste/a_qerr"] = float(self.a_err) / self.a_n
        return out


class RoSTELinear(nn.Linear):
    """y = Q_a(x R) Q_w(W)^T + b, R the optional online rotation (R4 on down_proj). Holds the original Linear's
    parameters under the same names, so the state dict keeps the checkpoint's keys."""

    def __init__(self, linear: nn.Linear, spec: RoSTESpec, input_block: torch.Tensor | None, stats: QuantStats):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.spec = spec
        self.stats = stats
        self.register_buffer("input_rotation", input_block, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if self.input_rotation is not None:
            x = rotate(x, self.input_rotation)
        x_q = fake_quantize(x, spec.a_bits, spec.a_sym, spec.ste_clip_grad)
        observe = None
        if self.training:
            if spec.a_bits < 16:
                with torch.no_grad():
                    self.stats.add(x_q, x, weight=False)
            if spec.w_bits < 16:
                observe = functools.partial(self.stats.add, weight=True)
        return quantized_weight_linear(
            x_q, self.weight, self.bias, spec.w_bits, spec.w_sym, spec.ste_clip_grad, observe
        )

    def extra_repr(self) -> str:
        s = self.spec
        rot = "" if self.input_rotation is None else f", online_hadamard={self.input_rotation.shape[0]}"
        return f"{super().extra_repr()}, w_bits={s.w_bits}, a_bits={s.a_bits}{rot}"


def _kv_attention(inner, module, query, key, value, attention_mask, **kwargs):
    """R3 on q and k (after RoPE), then Q_kv on K and V per head, then the model's own attention."""
    settings: RoSTESpec | None = getattr(module, "roste_spec", None)
    if settings is not None:
        r3 = module.roste_r3
        if r3 is not None:
            query, key = rotate(query, r3), rotate(key, r3)
        key = fake_quantize(key, settings.kv_bits, settings.kv_sym, settings.ste_clip_grad)
        value = fake_quantize(value, settings.kv_bits, settings.kv_sym, settings.ste_clip_grad)
    return inner(module, query, key, value, attention_mask, **kwargs)


# --- the model's parts ----------------------------------------------------------------------------------------------
def _layers(model: nn.Module) -> nn.ModuleList:
    layers = getattr(getattr(model, "model", None), "layers", None)
    needed = (*LINEARS, "input_layernorm", "post_attention_layernorm")
    if layers is None or not all(_has(layer, name) for layer in layers for name in needed):
        raise ValueError(
            f"RoSTE's rotations are written for Llama-type decoders (model.model.layers[i] with self_attn.q/k/v/o_proj, "
            f"mlp.gate/up/down_proj, input_layernorm, post_attention_layernorm); {type(model).__name__} is not one."
        )
    return layers


def _has(module: nn.Module, dotted: str) -> bool:
    try:
        module.get_submodule(dotted)
    except AttributeError:
        return False
    return True


def refuse_quantized_base(model: nn.Module) -> None:
    """RoSTE is full-parameter QAT: it fake-quantises and updates latent full-precision weights, which a
    bitsandbytes 4-/8-bit base does not hold."""
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    quantized = quantized or any(type(m).__name__ in ("Linear4bit", "Linear8bitLt") for m in model.modules())
    if quantized:
        raise ValueError(
            "RoSTE cannot train a bitsandbytes-quantised base (--load_in_4bit / --load_in_8bit): it is full-parameter "
            "quantisation-aware training that rotates the weights and updates their full-precision values through "
            "its own fake quantiser. Load the model in full precision (drop --load_in_4bit)."
        )


def _rms_eps(norm: nn.Module) -> None:
    if not hasattr(norm, "weight") or getattr(norm, "bias", None) is not None:
        raise ValueError(f"RoSTE folds RMSNorm weights; {type(norm).__name__} has a bias or no weight")


@torch.no_grad()
def _set(param: torch.Tensor, value: torch.Tensor) -> None:
    param.copy_(value.to(param.dtype))


@torch.no_grad()
def untie_lm_head(model: nn.Module) -> None:
    """Give lm_head a weight of its own (the card's pitfall: folding the final norm into it breaks the tie)."""
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    if head.weight is embed.weight or head.weight.data_ptr() == embed.weight.data_ptr():
        head.weight = nn.Parameter(embed.weight.detach().clone(), requires_grad=embed.weight.requires_grad)
    model.config.tie_word_embeddings = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = False


@torch.no_grad()
def fold_norms_and_rotate_r1(model: nn.Module) -> None:
    """Fold each RMSNorm weight into its consumers (W <- W diag(w), w <- 1), then rotate the residual stream by R1:
    E <- E R1, input-side W <- W R1, output-side W <- R1^T W (b <- b R1), lm_head W <- W R1. Computed in float64."""
    layers = _layers(model)
    untie_lm_head(model)
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    hidden = embed.weight.shape[1]
    r1 = rotation_matrix(hidden)
    final_norm = model.model.norm
    for norm, consumers in [
        *((layer.input_layernorm, [layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj])
          for layer in layers),
        *((layer.post_attention_layernorm, [layer.mlp.gate_proj, layer.mlp.up_proj]) for layer in layers),
        (final_norm, [head]),
    ]:  # fmt: skip
        _rms_eps(norm)
        w = norm.weight.double()
        for linear in consumers:
            _set(linear.weight, linear.weight.double() * w)
        norm.weight.fill_(1.0)
    _set(embed.weight, embed.weight.double() @ r1)
    _set(head.weight, head.weight.double() @ r1)
    for layer in layers:
        for name in INPUT_SIDE:
            linear = layer.get_submodule(name)
            _set(linear.weight, linear.weight.double() @ r1)
        for name in OUTPUT_SIDE:
            linear = layer.get_submodule(name)
            _set(linear.weight, r1.T @ linear.weight.double())
            if linear.bias is not None:
                _set(linear.bias, linear.bias.double() @ r1)


def _head_dim(attn: nn.Module) -> int:
    return attn.head_dim


@torch.no_grad()
def rotate_r2(layer: nn.Module) -> None:
    """R2 per head: v_proj's output rows W_v <- H^T W_v within each head (b_v likewise), o_proj W_o <- W_o H."""
    attn = layer.self_attn
    hd = _head_dim(attn)
    h = rotation_matrix(hd)
    v, o = attn.v_proj, attn.o_proj
    wv = v.weight.double()
    _set(v.weight, (h.T @ wv.reshape(-1, hd, wv.shape[1])).reshape_as(wv))
    if v.bias is not None:
        _set(v.bias, (v.bias.double().reshape(-1, hd) @ h).reshape(-1))
    _set(o.weight, rotate(o.weight.double(), h))


@torch.no_grad()
def rotate_r4_weight(layer: nn.Module) -> None:
    """The offline half of R4: W_down <- W_down H (the online half rotates down_proj's input)."""
    down = layer.mlp.down_proj
    d_ff = down.weight.shape[1]
    _set(down.weight, rotate(down.weight.double(), rotation_matrix(block_size(d_ff))))


# --- the search -----------------------------------------------------------------------------------------------------
def rotated_error(x: torch.Tensor, block: torch.Tensor, bits: int, symmetric: bool) -> tuple[float, float]:
    """(off, on): mean((Q(x) - x)^2) without and with the rotation x <- x R over the last dimension, in float64."""
    x = x.detach().double()
    rotated = rotate(x, block.double())
    return tuple((fake_quantize(t, bits, symmetric) - t).pow(2).mean().item() for t in (x, rotated))


def site_errors(
    weight: torch.Tensor, x: torch.Tensor, block: torch.Tensor, spec: RoSTESpec
) -> dict[str, tuple[float, float]]:
    """{"w": (off, on), "a": (off, on)} of a site whose weight [out, in] reads x [N, in]: W <- W R, x <- x R."""
    return {
        "w": rotated_error(weight, block, spec.w_bits, spec.w_sym),
        "a": rotated_error(x, block, spec.a_bits, spec.a_sym),
    }


def enable_site(e_off: float, e_on: float, scale: float) -> bool:
    """The card's rule e(on) < e(off), with a tie (within TIE_RTOL of the tensors' mean square) kept off."""
    return e_on < e_off - TIE_RTOL * scale


def choose_site(weight: torch.Tensor, x: torch.Tensor, block: torch.Tensor, spec: RoSTESpec) -> bool:
    """Whether rotating by `block` lowers e = weight error + activation error (one site, one activation batch)."""
    errors = site_errors(weight, x, block, spec)
    scale = weight.double().pow(2).mean().item() + x.double().pow(2).mean().item()
    return enable_site(errors["w"][0] + errors["a"][0], errors["w"][1] + errors["a"][1], scale)


class _SiteAccumulator:
    """Activation error sums of one site over the calibration batches (attended tokens only)."""

    def __init__(self, block: torch.Tensor, spec: RoSTESpec):
        self.block, self.spec = block, spec
        self.off = self.on = self.square = 0.0
        self.count = 0
        self.mask: torch.Tensor | None = None

    def __call__(self, module, args) -> None:
        x = args[0].detach().double()
        if self.mask is not None:
            x = x[self.mask]
        x = x.reshape(-1, x.shape[-1])
        rotated = rotate(x, self.block)
        bits, sym = self.spec.a_bits, self.spec.a_sym
        self.off += (fake_quantize(x, bits, sym) - x).pow(2).sum().item()
        self.on += (fake_quantize(rotated, bits, sym) - rotated).pow(2).sum().item()
        self.square += x.pow(2).sum().item()
        self.count += x.numel()


@torch.no_grad()
def search_rotations(
    model: nn.Module, spec: RoSTESpec, calib_batches: Iterable[Mapping[str, torch.Tensor]]
) -> tuple[RotationConfig, dict[str, float]]:
    """The upper level: for each layer and site in `spec.search_sites` enable the rotation iff
    e(on) = mean(Q(W R) - W R)^2 + mean(Q(x R) - x R)^2 < e(off), x the site's inputs on the calibration batches (run
    through the model as it is now: R1 applied, nothing quantised). Returns the config and summary errors."""
    layers = _layers(model)
    sites = {"R2": "self_attn.o_proj", "R4": "mlp.down_proj"}
    accumulators: dict[tuple[int, str], _SiteAccumulator] = {}
    handles = []
    for i, layer in enumerate(layers):
        for site in spec.search_sites:
            linear = layer.get_submodule(sites[site])
            dim = linear.weight.shape[1]
            block = rotation_matrix(_head_dim(layer.self_attn) if site == "R2" else block_size(dim))
            acc = accumulators[(i, site)] = _SiteAccumulator(block, spec)
            handles.append(linear.register_forward_pre_hook(acc))
    was_training = model.training
    model.eval()
    try:
        for batch in calib_batches if accumulators else ():
            mask = batch.get("attention_mask")
            for acc in accumulators.values():
                acc.mask = None if mask is None else mask.bool()
            model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    config: RotationConfig = {i: {site: False for site in SITES} for i in range(len(layers))}
    totals = {"calib_e_off": 0.0, "calib_e_chosen": 0.0}
    for (i, site), acc in accumulators.items():
        if acc.count == 0:
            raise ValueError("RoSTE's rotation search saw no calibration tokens (empty calibration batches).")
        weight = layers[i].get_submodule(sites[site]).weight
        w_off, w_on = rotated_error(weight, acc.block, spec.w_bits, spec.w_sym)
        e_off, e_on = w_off + acc.off / acc.count, w_on + acc.on / acc.count
        scale = weight.double().pow(2).mean().item() + acc.square / acc.count
        config[i][site] = enable_site(e_off, e_on, scale)
        totals["calib_e_off"] += e_off
        totals["calib_e_chosen"] += e_on if config[i][site] else e_off
    return config, totals


# --- the whole transform --------------------------------------------------------------------------------------------
def apply_roste(
    model: nn.Module,
    spec: RoSTESpec | Any,
    calib_batches: Iterable[Mapping[str, torch.Tensor]] | None = None,
    rotation_config: Mapping | None = None,
    *,
    r3: bool | None = None,
    weights_rotated: bool = False,
    broadcast: Callable[[RotationConfig | None], RotationConfig] | None = None,
) -> RotationConfig:
    """Rotate and wrap `model` in place (see the module docstring) and return its rotation configuration.

    `spec`: a `RoSTESpec` or a `RoSTEConfig`. `rotation_config` ({layer: {"R2": bool, "R4": bool}}) is used as given;
    else it is searched on `calib_batches` (sites outside `spec.search_sites` stay off). `r3`: the online q/k
    rotation (default: on iff kv_bits < 16). `weights_rotated`: the weights already hold the offline rotations (a
    model saved by RoSTE): only the online parts and the quantisers are installed. `broadcast`: under several
    processes, the search runs only where `calib_batches` is given (the main process) and `broadcast` hands its
    result to every process."""
    spec = spec.roste_spec() if hasattr(spec, "roste_spec") else spec
    refuse_quantized_base(model)
    layers = _layers(model)
    if getattr(model, "roste_rotation_config", None) is not None:
        raise ValueError("this model already went through apply_roste")
    if not weights_rotated and spec.rotate_r1:
        fold_norms_and_rotate_r1(model)
    if rotation_config is None:
        if calib_batches is not None or not spec.search_sites:
            rotation_config, totals = search_rotations(model, spec, calib_batches or ())
            logger.info("RoSTE rotation search: %s", totals)
        elif broadcast is None:
            raise ValueError("apply_roste: give calib_batches to search the rotations, or a rotation_config")
        if broadcast is not None:
            rotation_config = broadcast(rotation_config)
    config = normalize_rotation_config(rotation_config, len(layers))
    use_r3 = spec.kv_bits < 16 if r3 is None else r3
    stats = QuantStats()
    for i, layer in enumerate(layers):
        if not weights_rotated:
            if config[i]["R2"]:
                rotate_r2(layer)
            if config[i]["R4"]:
                rotate_r4_weight(layer)
        for name in LINEARS:
            parent_name, _, child = name.rpartition(".")
            parent = layer.get_submodule(parent_name)
            linear = getattr(parent, child)
            block = None
            if name == "mlp.down_proj" and config[i]["R4"]:
                block = rotation_matrix(block_size(linear.weight.shape[1]), linear.weight.dtype)
            setattr(parent, child, RoSTELinear(linear, spec, block, stats))
        attn = layer.self_attn
        attn.roste_spec = spec
        hd = _head_dim(attn)
        attn.register_buffer(
            "roste_r3", rotation_matrix(block_size(hd), layer.mlp.down_proj.weight.dtype) if use_r3 else None,
            persistent=False,
        )  # fmt: skip
    if spec.quantize_lm_head:
        model.lm_head = RoSTELinear(model.lm_head, spec, None, stats)
    if spec.kv_bits < 16 or use_r3:
        wrap_attention(model, "roste", _kv_attention)
    model.roste_rotation_config = config
    model.roste_spec = spec
    model.roste_stats = stats
    model.roste_r3 = use_r3
    return config


def normalize_rotation_config(config: Mapping, num_layers: int) -> RotationConfig:
    """{int layer: {"R2": bool, "R4": bool}} for every layer, from a dict whose keys may be strings (JSON)."""
    out: RotationConfig = {i: {site: False for site in SITES} for i in range(num_layers)}
    for key, sites in config.items():
        layer = int(key)
        if not 0 <= layer < num_layers:
            raise ValueError(f"rotation config names layer {layer}; the model has {num_layers}")
        for site, on in sites.items():
            if site not in SITES:
                raise ValueError(f"rotation config: unknown site {site!r} (layer {layer}); sites are {SITES}")
            out[layer][site] = bool(on)
    return out


def rotation_counts(config: RotationConfig) -> dict[str, int]:
    return {f"roste/num_{site}_on": sum(sites[site] for sites in config.values()) for site in SITES}


# --- saving and loading ---------------------------------------------------------------------------------------------
def write_roste_files(model: nn.Module, folder: str | Path, weights_quantized: bool) -> None:
    """rotation_config.json and roste_state.json next to the weights: what `load_roste_model` needs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {str(i): sites for i, sites in model.roste_rotation_config.items()}
    (folder / ROTATION_CONFIG).write_text(json.dumps(config, indent=1))
    state = {
        "spec": model.roste_spec.to_dict(),
        "r3": model.roste_r3,
        "weights_rotated": True,
        "weights_quantized": weights_quantized,
        **rotation_counts(model.roste_rotation_config),
    }
    (folder / ROSTE_STATE).write_text(json.dumps(state, indent=1))


def load_rotation_config(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / ROTATION_CONFIG
    return json.loads(path.read_text())


@torch.no_grad()
def export_quantized(model: nn.Module, folder: str | Path, tokenizer=None) -> Path:
    """Save `model` (transformed by `apply_roste`) for inference with Q_w applied once to its weights (the card's
    export), the rotation config and RoSTE's state; `load_roste_model(folder)` gives the same outputs. The model in
    memory keeps its latent weights."""
    folder = Path(folder)
    state = {k: v for k, v in model.state_dict().items()}
    for name, module in model.named_modules():
        if isinstance(module, RoSTELinear):
            key = f"{name}.weight"
            spec = module.spec
            state[key] = fake_quantize(module.weight.detach(), spec.w_bits, spec.w_sym).clone()
    model.save_pretrained(folder, state_dict=state)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    write_roste_files(model, folder, weights_quantized=True)
    return folder


def load_roste_model(folder: str | Path, **kwargs: Any) -> nn.Module:
    """A model saved by RoSTE (a training output or `export_quantized`) with its online rotations and quantisers
    installed again: a plain `from_pretrained` would miss R4's online half and every quantiser."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    state = json.loads((folder / ROSTE_STATE).read_text())
    spec_dict = state["spec"]
    spec = RoSTESpec(**{**spec_dict, "search_sites": tuple(spec_dict["search_sites"])})
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    apply_roste(model, spec, rotation_config=load_rotation_config(folder), r3=state["r3"], weights_rotated=True)
    return model
