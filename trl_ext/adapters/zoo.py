"""A peft config for a named method at a matched trainable-parameter budget (peft-fm-survey, arXiv 2501.13787).

PEFT methods are usually compared at unequal, often unreported budgets. `build_peft_config("lora", model,
budget=0.005)` searches the method's size knob (LoRA rank, prompt length, block size, ...) for the trainable count
closest to the budget, counting each candidate exactly: the peft model is built on a meta-device copy of the base
(no weights, no memory) and its `requires_grad` parameters are summed. Each method carries its survey category.

The table is keyed by peft's own `PEFT_TYPE_TO_CONFIG_MAPPING`, so a method missing from the installed peft is left
out, and a peft type this table does not know is listed by `unsupported()` instead of breaking the import.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("selective", "additive", "prompt", "reparameterization", "hybrid")

Knob = Callable[["ModelShape"], Sequence[Any]]


@dataclass(frozen=True)
class ModelShape:
    """What a knob's candidate values depend on: the base model's config and the (in, out) features of the linears
    that `target_modules="all-linear"` selects."""

    config: Any
    linears: tuple[tuple[int, int], ...]
    names: tuple[str, ...] = ()  # the targeted linears' own names (q_proj, ...), sorted

    @property
    def dims(self) -> list[int]:
        return [d for pair in self.linears for d in pair]

    @property
    def num_layers(self) -> int:
        return int(getattr(self.config, "num_hidden_layers", 1))


@dataclass(frozen=True)
class ZooMethod:
    """One method of the zoo. `knob` is the config field searched (None: the size is fixed); its values are the ints
    `knob_min..` (unbounded above) or, when `candidates` is given, those values for this model in order of growing
    size. `fixed` are config fields set for every build (a callable gets the ModelShape). `count` replaces the
    meta-device count for methods whose construction needs real weights (a closed form)."""

    name: str
    peft_type: str
    category: str
    knob: str | None = None
    knob_min: int = 1
    candidates: Knob | None = None
    fixed: dict[str, Any] | Callable[[ModelShape], dict[str, Any]] = field(default_factory=dict)
    targets: bool = True
    count: Callable[[Any, ModelShape, Any], int] | None = None
    # parameter-name parts peft freezes only in an init step the meta device skips (AdaLoRA's ranknum)
    frozen: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"zoo method {self.name!r}: category {self.category!r} is not one of {CATEGORIES}")

    def fixed_for(self, shape: ModelShape) -> dict[str, Any]:
        return dict(self.fixed(shape) if callable(self.fixed) else self.fixed)


def _divisors_of_all(values: Sequence[int], limit: int | None = None) -> list[int]:
    g = 0
    for v in values:
        g = math.gcd(g, v)
    return [d for d in range(1, (limit or g) + 1) if g % d == 0]


def _powers_of_two_dividing(values: Sequence[int], start: int = 2) -> list[int]:
    g = 0
    for v in values:
        g = math.gcd(g, v)
    out, p = [], start
    while p <= g:
        if g % p == 0:
            out.append(p)
        p *= 2
    return out


def _shira_count(model: Any, shape: ModelShape, config: Any) -> int:
    # SHiRA draws its random mask with torch.nonzero, which the meta device cannot run; its size is r*(in+out) per
    # target by construction (the same as LoRA's), so count it in closed form.
    return int(config.r) * sum(i + o for i, o in shape.linears)


def _per_target(field_name: str) -> Callable[[Any, ModelShape, Any], int]:
    """A count of `field_name` trainable entries per target linear: FourierFT and WaveFT draw their random
    frequencies, TinyLoRA its projections, on the CPU even for a meta model, slow at 135M parameters; the closed form
    is checked against a real build in the tests."""

    def count(model: Any, shape: ModelShape, config: Any) -> int:
        return int(getattr(config, field_name)) * len(shape.linears)

    return count


_R = {"knob": "r"}
# The zoo: peft 0.21 types with the survey's category (Selective / Additive / Prompt / Reparameterization / Hybrid).
_TABLE: tuple[ZooMethod, ...] = (
    ZooMethod("lora", "LORA", "reparameterization", **_R),
    ZooMethod("dora", "LORA", "reparameterization", **_R, fixed={"use_dora": True}, note="LoRA + magnitude vector"),
    ZooMethod(
        "adalora",
        "ADALORA",
        "reparameterization",
        knob="init_r",
        fixed={"total_step": 1000, "target_r": 1},
        frozen=("ranknum",),
        note="budget at init_r; trl-ext train prunes it to target_r over the run (total_step = max_steps)",
    ),
    ZooMethod("loha", "LOHA", "reparameterization", **_R),
    ZooMethod("lokr", "LOKR", "reparameterization", **_R),
    ZooMethod(
        "oft",
        "OFT",
        "reparameterization",
        knob="oft_block_size",
        candidates=lambda s: _powers_of_two_dividing([i for i, _ in s.linears]),
        fixed={"r": 0},
    ),
    ZooMethod(
        "boft",
        "BOFT",
        "reparameterization",
        knob="boft_block_size",
        candidates=lambda s: _powers_of_two_dividing([i for i, _ in s.linears]),
        fixed={"boft_block_num": 0},
    ),
    ZooMethod("hra", "HRA", "reparameterization", knob="r", knob_min=2, note="r even (Householder pairs)"),
    ZooMethod(
        "vera", "VERA", "reparameterization", **_R, note="shared frozen projections; trains d_out + r per target"
    ),
    ZooMethod("pvera", "PVERA", "reparameterization", **_R),
    ZooMethod("fourierft", "FOURIERFT", "reparameterization", knob="n_frequency", count=_per_target("n_frequency")),
    ZooMethod("waveft", "WAVEFT", "reparameterization", knob="n_frequency", count=_per_target("n_frequency")),
    ZooMethod("shira", "SHIRA", "reparameterization", **_R, count=_shira_count),
    ZooMethod(
        "randlora",
        "RANDLORA",
        "reparameterization",
        knob="r",
        # the bases are frozen and shared; their count, min(in, out) / r, scales the trainable factors: fewer for a
        # larger r, so candidates go from the largest r down
        candidates=lambda s: list(range(min(min(s.dims), 4096), 0, -1)),
    ),
    ZooMethod("delora", "DELORA", "reparameterization", **_R),
    ZooMethod("gralora", "GRALORA", "reparameterization", **_R),
    ZooMethod("hira", "HIRA", "reparameterization", **_R),
    ZooMethod("lily", "LILY", "reparameterization", **_R),
    ZooMethod("miss", "MISS", "reparameterization", **_R),
    ZooMethod(
        "tinylora", "TINYLORA", "reparameterization", knob="u", count=_per_target("u"), note="a u-vector per target"
    ),
    ZooMethod(
        "unilora", "UNILORA", "reparameterization", knob="theta_d_length", note="one vector shared by all targets"
    ),
    ZooMethod("psoft", "PSOFT", "reparameterization", **_R),
    ZooMethod("deft", "DEFT", "reparameterization", **_R),
    ZooMethod(
        "vblora",
        "VBLORA",
        "reparameterization",
        knob="num_vectors",
        fixed=lambda s: {"vector_length": max(_divisors_of_all(s.dims, 256)), "r": 4},
    ),
    ZooMethod(
        "c3a",
        "C3A",
        "reparameterization",
        knob="block_size",
        # more parameters for a smaller block: candidates from the largest block down
        candidates=lambda s: sorted(_divisors_of_all(s.dims), reverse=True),
    ),
    ZooMethod(
        "road",
        "ROAD",
        "reparameterization",
        knob="variant",
        candidates=lambda s: ["road_1", "road_2", "road_4"],
        fixed=lambda s: {"group_size": max(d for d in _divisors_of_all(s.dims, 64) if d % 2 == 0)},
    ),
    ZooMethod("glora", "GLORA", "hybrid", **_R),
    ZooMethod(
        "supertuning",
        "SUPERTUNING",
        "selective",
        knob="sparsity",
        note="sparsity solved in closed form: 1 - budget / target entries",
    ),
    ZooMethod("ln_tuning", "LN_TUNING", "selective", targets=False),
    ZooMethod("beft", "BEFT", "selective"),
    # peft saves IA3's resolved "all-linear" as full module paths beside feedforward_modules=["down_proj"], a
    # config its own check then refuses to load; the linears' own names give the same targets and load back
    ZooMethod("ia3", "IA3", "additive", fixed=lambda s: {"target_modules": list(s.names)}),
    ZooMethod("peanut", "PEANUT", "additive", **_R),
    ZooMethod("prompt_tuning", "PROMPT_TUNING", "prompt", knob="num_virtual_tokens", targets=False),
    ZooMethod("prefix_tuning", "PREFIX_TUNING", "prompt", knob="num_virtual_tokens", targets=False),
    ZooMethod(
        "p_tuning",
        "P_TUNING",
        "prompt",
        knob="num_virtual_tokens",
        targets=False,
        note="plus a fixed MLP prompt encoder",
    ),
    ZooMethod("cartridge", "CARTRIDGE", "prompt", knob="num_virtual_tokens", targets=False),
    ZooMethod(
        "adaption_prompt",
        "ADAPTION_PROMPT",
        "prompt",
        knob="adapter_len",
        targets=False,
        fixed=lambda s: {"adapter_layers": s.num_layers},
    ),
)

# peft types left out of the zoo, and why (a config cannot be built from the model alone, or no forward in plain SFT).
_EXCLUDED = {
    "ADAMSS": "SVD + clustering of the real weights (and scikit-learn)",
    "CPT": "needs the task's token ids and masks in the config",
    "FROD": "decomposes the real weights at construction",
    "OSF": "SVD of the real weights at construction",
    "MULTITASK_PROMPT_TUNING": "needs task_ids in every batch",
    "POLY": "needs task_ids in every batch",
    "XLORA": "routes between already trained LoRA adapters",
    "SHADOW": "its shadow network does not run a causal-LM forward in peft 0.21.2",
    "TRAINABLE_TOKENS": "needs the token indices to train, not a size",
}

# Categories of the tuners trl-ext plugins register (a declared tuner not named here counts as additive).
_TRL_EXT_CATEGORIES = {"ssf": "additive", "loramoe": "additive", "spiel": "selective", "lt_sft": "selective"}


def _trl_ext_methods() -> list[ZooMethod]:
    from trl_ext.adapters import declared, register_declared
    from trl_ext.compat.peft_tuners import tuner_type

    register_declared()
    return [
        ZooMethod(
            name,
            str(tuner_type(name)),
            tuner.category or _TRL_EXT_CATEGORIES.get(name, "additive"),
            knob=tuner.knob,
            targets=False,
            note="trl-ext tuner at its card's defaults",
        )
        for name, tuner in sorted(declared().items())
    ]


def _peft_types() -> dict[str, type]:
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return {str(getattr(k, "value", k)): v for k, v in PEFT_TYPE_TO_CONFIG_MAPPING.items()}


def zoo_methods() -> dict[str, ZooMethod]:
    """The methods the installed peft (and the declared trl-ext tuners) offer, by name."""
    types = _peft_types()
    found = {m.name: m for m in _TABLE if m.peft_type in types}
    for m in _trl_ext_methods():
        if m.peft_type in types:
            found[m.name] = m
    return found


def list_methods() -> dict[str, dict[str, Any]]:
    """name -> {"category", "knob", "peft_type"} for every method the zoo can build."""
    return {
        name: {"category": m.category, "knob": m.knob, "peft_type": m.peft_type.split(" ")[0]}
        for name, m in zoo_methods().items()
    }


def unsupported() -> dict[str, str]:
    """peft types of the installed peft the zoo does not build, with the reason."""
    known = {m.peft_type for m in _TABLE} | {m.peft_type for m in _trl_ext_methods()}
    return {t: _EXCLUDED.get(t, "not in the zoo's table yet (a newer peft?)") for t in _peft_types() if t not in known}


# ------------------------------------------------------------------------------------------------------- counting


def base_model_on_meta(model_or_config: Any):
    """A weightless copy of the base model: from a model (its config), a transformers config, or a name/path (only
    its config.json is read; built-in aliases resolve as for training)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

    if isinstance(model_or_config, str):
        from trl_ext.models import resolve_model_path

        config = AutoConfig.from_pretrained(resolve_model_path(model_or_config))
    elif isinstance(model_or_config, PretrainedConfig):
        config = model_or_config
    else:
        config = model_or_config.config
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _numel(p: Any) -> int:
    return int(getattr(p, "ds_numel", 0) or p.numel())  # a ZeRO-3 shard keeps its full size in ds_numel


def count_parameters(model: Any) -> int:
    """All parameters, a tied embedding counted once."""
    return sum(_numel(p) for p in model.parameters())


def trainable_parameters(model: Any) -> int:
    """Parameters with requires_grad, each shared tensor counted once."""
    return sum(_numel(p) for p in model.parameters() if p.requires_grad)


def budget_of(model: Any) -> tuple[int, int]:
    """(trainable, base total) of a model as it trains. Of a PeftModel the base total leaves out the adapter's own
    tensors (LoRA factors, copied norms, sparse values), which peft stores beside frozen base weights."""
    trainable = trainable_parameters(model)
    total = count_parameters(model)
    if hasattr(model, "peft_config"):
        total -= trainable
    return trainable, total


def category_of(peft_config: Any) -> str | None:
    """The zoo's survey category of a peft config (None for a type the zoo does not know)."""
    kind = str(getattr(peft_config.peft_type, "value", peft_config.peft_type))
    if kind == "LORA" and getattr(peft_config, "use_dora", False):
        return "reparameterization"
    for m in (*_TABLE, *_trl_ext_methods()):
        if m.peft_type == kind:
            return m.category
    return None


def model_shape(meta_model: Any, target_modules: str | list[str] | None = "all-linear") -> ModelShape:
    """The config and the (in, out) features of the linears `target_modules` selects (found by a LoRA build)."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        copy.deepcopy(meta_model), LoraConfig(r=1, target_modules=target_modules or "all-linear")
    )
    targeted = [
        (name, m) for name, m in peft_model.named_modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A")
    ]
    linears = tuple((m.in_features, m.out_features) for _, m in targeted)
    names = tuple(sorted({name.rsplit(".", 1)[-1] for name, _ in targeted}))
    return ModelShape(config=meta_model.config, linears=linears, names=names)


def count_trainable(model: Any, peft_config: Any, frozen: Sequence[str] = ()) -> int:
    """The trainable parameters `get_peft_model(model, peft_config)` gives, counted on a meta-device copy; names
    containing a part in `frozen` are not counted."""
    from peft import get_peft_model

    meta = model if _on_meta(model) else base_model_on_meta(model)
    peft_model = get_peft_model(copy.deepcopy(meta), copy.deepcopy(peft_config))
    if not frozen:
        return trainable_parameters(peft_model)
    return sum(
        _numel(p)
        for name, p in peft_model.named_parameters()
        if p.requires_grad and not any(part in name for part in frozen)
    )


def _on_meta(model: Any) -> bool:
    first = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return first is not None and first.device.type == "meta"


# --------------------------------------------------------------------------------------------------------- search


@dataclass
class ZooResult:
    """A built config and what it costs: `budget_matched` is False when no knob value lands within `tol` (a fixed
    size method, or a method whose smallest size is already larger)."""

    method: str
    category: str
    knob: str | None
    value: Any
    trainable: int
    total: int
    target: int | None
    budget_matched: bool
    config: Any

    @property
    def fraction(self) -> float:
        return self.trainable / self.total


def _resolve_budget(budget: int | float | None, total: int) -> int | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or budget <= 0:
        raise ValueError(f"budget must be a positive count or a fraction in (0, 1), got {budget!r}")
    if isinstance(budget, float) and budget < 1:
        return max(1, round(budget * total))
    return int(budget)


class _Counter:
    def __init__(self, method: ZooMethod, meta_model: Any, shape: ModelShape, base_kwargs: dict[str, Any]):
        self.method, self.meta, self.shape, self.base_kwargs = method, meta_model, shape, base_kwargs
        self.cache: dict[Any, int | None] = {}

    def config(self, value: Any = None):
        kwargs = dict(self.base_kwargs)
        if self.method.knob is not None and value is not None:
            kwargs[self.method.knob] = value
        return _peft_types()[self.method.peft_type](**kwargs)

    def __call__(self, value: Any) -> int | None:
        """The trainable count at `value`, or None when peft refuses the value for this model."""
        if value not in self.cache:
            try:
                config = self.config(value)
                if self.method.count is not None:
                    self.cache[value] = self.method.count(self.meta, self.shape, config)
                else:
                    self.cache[value] = count_trainable(self.meta, config, self.method.frozen)
            except (ValueError, AssertionError, RuntimeError, TypeError):
                self.cache[value] = None
        return self.cache[value]


def _search_int(counter: _Counter, target: int, lo: int, cap: int = 1 << 22) -> Any:
    """The int knob value >= lo whose count is closest to `target` (ties: the smaller), for a count growing with the
    value: step up by extrapolating the last two counts (exact for the affine counts of most methods) until the
    target is bracketed, then interpolate/bisect. Each probe is a peft build, so few probes matter (FourierFT draws
    its random frequencies on the CPU even on the meta device)."""
    p_lo = counter(lo)
    if p_lo is None:  # e.g. HRA wants an even r
        lo += 1
        p_lo = counter(lo)
        if p_lo is None:
            return lo
    if p_lo >= target:
        return lo
    hi, flat, first = lo + 1, 0, {p_lo: lo}
    while hi < cap:
        p_hi = counter(hi)
        if p_hi is None or p_hi >= target:
            break
        first.setdefault(p_hi, hi)
        flat = flat + 1 if p_hi == p_lo else 0
        if flat >= 3:  # the knob stopped changing the count (LoKr's r past its factor sizes): its smallest value
            return first[p_hi]
        slope = (p_hi - p_lo) / (hi - lo)
        lo, p_lo = hi, p_hi
        step = math.ceil(1.05 * (target - p_lo) / slope) + 1 if slope > 0 else hi
        hi = min(cap, hi + max(1, min(step, 64 * hi)))
    else:
        return lo
    if counter(hi) is None:  # past what peft accepts for this model: the largest accepted below
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if counter(mid) is None:
                hi = mid
            else:
                lo = mid
        return lo
    # now count(lo) < target <= count(hi); the counts are affine or close to it, so interpolate first
    while hi - lo > 1:
        p_hi = counter(hi)
        guess = lo + round((target - p_lo) * (hi - lo) / max(1, p_hi - p_lo))
        mid = min(max(guess, lo + 1), hi - 1)
        p_mid = counter(mid)
        if p_mid is None:
            mid = (lo + hi) // 2
            p_mid = counter(mid)
            if p_mid is None:
                break
        if p_mid < target:
            lo, p_lo = mid, p_mid
        else:
            hi = mid
        if p_mid == target:
            return mid
    return min((lo, hi), key=lambda v: (abs((counter(v) or 0) - target), v))


def _search_candidates(counter: _Counter, target: int, values: Sequence[Any]) -> Any:
    """The candidate (in order of growing size) whose count is closest to `target` (ties: the earlier); bisects over
    the list, then compares the neighbours of the crossing."""
    valid = [v for v in values if counter(v) is not None] if len(values) <= 12 else list(values)
    if not valid:
        raise ValueError(f"{counter.method.name}: no knob value fits this model ({list(values)[:8]}...)")
    lo, hi = 0, len(valid) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if (counter(valid[mid]) or 0) < target:
            lo = mid + 1
        else:
            hi = mid
    near = [valid[i] for i in (lo - 1, lo) if 0 <= i < len(valid) and counter(valid[i]) is not None]
    if not near:
        return valid[lo]
    return min(near, key=lambda v: (abs(counter(v) - target), valid.index(v)))


def build_peft_config(
    method: str,
    model_or_config: Any,
    budget: int | float | None = None,
    tol: float = 0.05,
    target_modules: str | list[str] | None = "all-linear",
    **overrides: Any,
):
    """A ready `peft.PeftConfig` for `method`, its knob solved so the trainable count is as close as possible to
    `budget` (an int: parameters; a float below 1: a fraction of the base model's parameters; None: the method's
    defaults). `overrides` are config fields set as given (the knob too, which then skips the search)."""
    return solve(method, model_or_config, budget, tol, target_modules, **overrides).config


def solve(
    method: str,
    model_or_config: Any,
    budget: int | float | None = None,
    tol: float = 0.05,
    target_modules: str | list[str] | None = "all-linear",
    **overrides: Any,
) -> ZooResult:
    """`build_peft_config`, with the count, the knob value and whether the budget was met (see ZooResult)."""
    methods = zoo_methods()
    if method not in methods:
        import difflib

        close = difflib.get_close_matches(method, methods, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown peft method {method!r}{hint}; one of: {', '.join(sorted(methods))}")
    spec = methods[method]
    meta = model_or_config if _on_meta(model_or_config) else base_model_on_meta(model_or_config)
    shape = model_shape(meta, target_modules if spec.targets else "all-linear")
    total = count_parameters(meta)
    target = _resolve_budget(budget, total)
    kwargs: dict[str, Any] = {"task_type": "CAUSAL_LM"}
    fields = {f.name for f in dataclasses.fields(_peft_types()[spec.peft_type])}
    if spec.targets and target_modules is not None and "target_modules" in fields:
        kwargs["target_modules"] = target_modules
    kwargs.update(spec.fixed_for(shape))  # the shape is of these targets: a fixed field may restate them
    kwargs.update(overrides)
    counter = _Counter(spec, meta, shape, {k: v for k, v in kwargs.items() if k != spec.knob})
    value = kwargs.get(spec.knob) if spec.knob else None
    if spec.knob and spec.knob not in overrides and target is not None:
        value = _solve_knob(spec, counter, shape, target)
    if spec.knob is None or value is None:
        counter.base_kwargs = kwargs
        value = None
    trainable = counter(value)
    if trainable is None:
        config = counter.config(value)  # raises peft's own message
        trainable = count_trainable(meta, config, spec.frozen)
    matched = target is None or abs(trainable - target) <= tol * target
    return ZooResult(method, spec.category, spec.knob, value, trainable, total, target, matched, counter.config(value))


def _solve_knob(spec: ZooMethod, counter: _Counter, shape: ModelShape, target: int) -> Any:
    if spec.name == "supertuning":
        entries = sum(i * o for i, o in shape.linears)
        # the largest sparsity whose floor-count still reaches the closest integer count
        density = min(1.0, max(0.0, target / entries))
        candidates = [1.0 - density, 1.0 - (target + 0.5) / entries, 1.0 - (target - 0.5) / entries]
        candidates = [min(max(s, 0.0), 0.999999) for s in candidates]
        return min(candidates, key=lambda s: (abs((counter(s) or 0) - target), -s))
    if spec.candidates is not None:
        return _search_candidates(counter, target, list(spec.candidates(shape)))
    return _search_int(counter, target, spec.knob_min)


__all__ = [
    "CATEGORIES",
    "ModelShape",
    "ZooMethod",
    "ZooResult",
    "base_model_on_meta",
    "budget_of",
    "build_peft_config",
    "category_of",
    "count_parameters",
    "count_trainable",
    "list_methods",
    "model_shape",
    "solve",
    "trainable_parameters",
    "unsupported",
    "zoo_methods",
]
