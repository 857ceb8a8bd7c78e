"""`rlhf_diversity`: sample K completions per held-out prompt during training (or on a saved model through
`trl-ext evaluate`) and log the diversity suite as `diversity/<key>` with the sampling settings beside it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback

from .metrics import DEFAULT_METRICS, NLI_FN_MISSING, VOCAB_SIZE, check_metrics, default_embed_fn, diversity_report

SETTINGS = ("temperature", "top_p", "num_samples", "max_new_tokens")


def resolve_callable(value: Any, option: str) -> Any:
    """A callable as is; "module.function" or "module:function" imported. A factory (a function of no argument
    that returns the scorer) is called once; anything else is used as the scorer itself."""
    if value is None or callable(value):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"rlhf_diversity: {option}={value!r} must be a callable or 'module.function'")
    import importlib
    import inspect

    module, sep, name = value.partition(":") if ":" in value else value.rpartition(".")
    if not module or not name:
        raise ValueError(f"rlhf_diversity: {option}={value!r} must name 'module.function'")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"rlhf_diversity: {option}={value!r} does not import: {exc}") from None
    if inspect.isfunction(obj) and not any(
        p.default is inspect.Parameter.empty for p in inspect.signature(obj).parameters.values()
    ):
        obj = obj()  # a factory of no argument
    if not callable(obj):
        raise ValueError(f"rlhf_diversity: {option}={value!r} is not callable")
    return obj


class DiversityCallback(GenerationEvalCallback):
    """Samples `num_samples` completions (K) of each of the first `num_prompts` prompts of `dataset_name`'s `split`
    (or of `prompts`, strings or chat messages) at `temperature` / `top_p`, seeded with `seed` (the training RNG is
    left as it was), and logs `diversity_report` of them as `diversity/<key>` plus `diversity/<setting>`."""

    label = "rlhf_diversity"

    def __init__(
        self,
        dataset_name: str = "builtin:arith",
        split: str = "test",
        num_prompts: int = 32,
        num_samples: int = 8,
        prompts: Sequence[Any] | None = None,
        metrics: Sequence[str] | str = DEFAULT_METRICS,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_size: int = 16,
        seed: int = 0,
        vocab_size: int = VOCAB_SIZE,
        n_min: int = 1,
        n_max: int = 5,
        ngram_n: int = 3,
        embed_fn: Any = None,
        encoder: str | None = None,
        nli_fn: Any = None,
        progress: bool = True,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
    ) -> None:
        for name, value, low in (
            ("num_prompts", num_prompts, 1),
            ("num_samples", num_samples, 1),
            ("max_new_tokens", max_new_tokens, 1),
            ("batch_size", batch_size, 1),
            ("vocab_size", vocab_size, 2),
            ("n_min", n_min, 1),
            ("n_max", n_max, 1),
            ("ngram_n", ngram_n, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"rlhf_diversity: {name}={value!r} must be an integer >= {low}")
        if n_max < n_min:
            raise ValueError(f"rlhf_diversity: n_max={n_max} must be >= n_min={n_min}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"rlhf_diversity: temperature={temperature!r} must be > 0 (diversity needs sampling)")
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(f"rlhf_diversity: top_p={top_p!r} must be in (0, 1]")
        self.metrics = check_metrics(metrics)
        pairwise = {"ngram_cos", "embedding", "nli"} & set(self.metrics)
        if pairwise and num_samples < 2:
            raise ValueError(f"rlhf_diversity: {', '.join(sorted(pairwise))} compare pairs: num_samples must be >= 2")
        self.nli_fn = resolve_callable(nli_fn, "nli_fn")
        if "nli" in self.metrics and self.nli_fn is None:
            raise ValueError(f"rlhf_diversity: {NLI_FN_MISSING}")
        self.embed_fn = resolve_callable(embed_fn, "embed_fn")
        if "embedding" in self.metrics and self.embed_fn is None:
            if encoder is not None:
                from trl_ext.models import resolve_encoder_path

                resolve_encoder_path(encoder)  # a missing encoder is refused now, not after training
            self.embed_fn = default_embed_fn(encoder)
        super().__init__(every_n_steps, at_train_end)
        if prompts is not None and (isinstance(prompts, str) or not list(prompts)):
            raise ValueError("rlhf_diversity: prompts must be a non-empty list of prompts")
        self.dataset_name = dataset_name if ":" in dataset_name or "/" in dataset_name else f"builtin:{dataset_name}"
        self.split, self.num_prompts, self.num_samples = split, num_prompts, num_samples
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, float(temperature), float(top_p)
        self.batch_size, self.seed, self.progress = batch_size, seed, progress
        self.options = {"vocab_size": vocab_size, "n_min": n_min, "n_max": n_max, "ngram_n": ngram_n}
        self._prompts = list(prompts)[:num_prompts] if prompts is not None else None
        self.last_outputs: list[list[str]] = []

    def prompts(self) -> list[Any]:
        if self._prompts is None:
            from trl_ext.data import load_dataset

            data = load_dataset(self.dataset_name, form="grpo")
            if self.split not in data:
                raise ValueError(
                    f"rlhf_diversity: {self.dataset_name} has no split {self.split!r}; splits: {list(data)}"
                )
            part = data[self.split]
            if "prompt" not in part.column_names:
                raise ValueError(f"rlhf_diversity: {self.dataset_name} has no 'prompt' column: {part.column_names}")
            self._prompts = list(part.select(range(min(self.num_prompts, len(part))))["prompt"])
        return self._prompts

    def sample(self, model: Any, tokenizer: Any) -> list[list[str]]:
        """K completions of each prompt, batched (`batch_size` prompts x K rows per `generate` call), under a forked
        RNG seeded with `seed`: the same samples at every evaluation of the same weights, the training RNG untouched."""
        import torch

        from trl_ext.inference.generation import generate_completions

        prompts = self.prompts()
        device = getattr(model, "device", torch.device("cpu"))
        devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            outputs = generate_completions(
                model,
                tokenizer,
                prompts,
                max_new_tokens=self.max_new_tokens,
                batch_size=max(1, self.batch_size // self.num_samples),
                progress=self.progress,
                do_sample=True,
                temperature=self.temperature,
                top_p=self.top_p,
                top_k=0,
                num_return_sequences=self.num_samples,
            )
        k = self.num_samples
        return [[g.text for g in outputs[i * k : (i + 1) * k]] for i in range(len(prompts))]

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        self.last_outputs = self.sample(model, tokenizer)
        extra = {"embed_fn": self.embed_fn, "nli_fn": self.nli_fn}
        report = diversity_report(self.last_outputs, self.metrics, **self.options, **extra)
        figures = {f"diversity/{key}": float(value) for key, value in report.items()}
        figures.update({f"diversity/{name}": float(getattr(self, name)) for name in SETTINGS})
        return figures

    def printed(self, figures: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in figures.items() if k.startswith("diversity/mean_per_input_")} | {
            k: v for k, v in figures.items() if k.startswith("diversity/overall_single_output_")
        }

    def plot(self, path: Path) -> Path | None:
        """The per-input means and the across-input figures over steps (the stds and the settings left out)."""
        from trl_ext.evaluation.plots import PlotUnavailableError, plot_over_steps

        names = [k for k in self.history[-1] if k != "step" and "std_per_input" not in k]
        names = [k for k in names if k.removeprefix("diversity/") not in SETTINGS]
        series = {
            name.removeprefix("diversity/"): [
                (h["step"], h[name]) for h in self.history if isinstance(h.get(name), float) and math.isfinite(h[name])
            ]
            for name in names
        }
        title = f"{self.label} (K={self.num_samples}, T={self.temperature:g}, top_p={self.top_p:g})"
        try:
            return plot_over_steps(series, path, title=title, ylabel="diversity")
        except PlotUnavailableError:
            return None
        except ValueError:
            return None
