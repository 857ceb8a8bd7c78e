"""The card's two-metric evaluator: n samples per problem, the unbiased pass@k of compiling and of semantically
correct (faithful) statements, and their gap, as a function and as the evaluation callback `overlap_pass_at_k`
(during training, in `trl-ext evaluate` and as `trl-ext compare --eval callback:overlap_pass_at_k`).

pass@k is the core's `trl_ext.compare.metrics.pass_at_k` (1 - C(n-c, k) / C(n, k), exact integers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trl_ext.compare.metrics import pass_at_k
from trl_ext.evaluation.callback import GenerationEvalCallback

Check = Callable[[Any, str], bool]


def formal_checks(compile_check: Callable[[str], bool], semantic_judge: Check | None = None) -> dict[str, Check]:
    """{"compile": c, "semantic": c and s}: a statement that does not compile cannot be semantically right, so the
    gap compile - semantic is never negative."""
    checks: dict[str, Check] = {"compile": lambda prompt, text: bool(compile_check(text))}
    if semantic_judge is not None:
        checks["semantic"] = lambda prompt, text: bool(compile_check(text)) and bool(semantic_judge(prompt, text))
    return checks


def pass_at_k_figures(verdicts: Mapping[str, Sequence[Sequence[bool]]], k_list: Sequence[int]) -> dict[str, float]:
    """`eval/<check>_pass@k` (the mean over problems of pass_at_k(n, c, k), each problem's n samples judged by the
    check) and, with both checks, `eval/compile_semantic_gap@k`. Every problem needs n >= k samples."""
    return {figure: sum(values) / len(values) for figure, values in pass_at_k_items(verdicts, k_list).items()}


def pass_at_k_items(verdicts: Mapping[str, Sequence[Sequence[bool]]], k_list: Sequence[int]) -> dict[str, list[float]]:
    """Per figure of `pass_at_k_figures`, its value per problem (the gap: compile minus semantic, per problem)."""
    items: dict[str, list[float]] = {}
    for name, per_problem in verdicts.items():
        if not per_problem:
            raise ValueError("pass@k: no problems to evaluate")
        for k in k_list:
            short = [len(v) for v in per_problem if len(v) < k]
            if short:
                raise ValueError(f"pass@{k} needs n >= k samples per problem; a problem has {short[0]}")
            items[f"eval/{name}_pass@{k}"] = [pass_at_k(len(v), sum(map(bool, v)), k) for v in per_problem]
    if "compile" in verdicts and "semantic" in verdicts:
        for k in k_list:
            pairs = zip(items[f"eval/compile_pass@{k}"], items[f"eval/semantic_pass@{k}"], strict=True)
            items[f"eval/compile_semantic_gap@{k}"] = [c - s for c, s in pairs]
    return items


def evaluate_pass_at_k(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    k_list: Sequence[int] = (1, 8),
    n: int = 8,
    checks: Mapping[str, Check] | None = None,
    temperature: float = 0.8,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Sample `n` completions per prompt (seeded; the training RNG untouched) and return `pass_at_k_figures` under
    `checks` (default: builtin:formal_arith's compile and semantic checks)."""
    if n < max(k_list):
        raise ValueError(f"pass@k needs n >= k: n={n}, k_list={list(k_list)}")
    verdicts = sampled_verdicts(model, tokenizer, prompts, n, checks, temperature, max_new_tokens, batch_size, seed,
                                progress)  # fmt: skip
    return pass_at_k_figures(verdicts, k_list)


def sampled_verdicts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    n: int = 8,
    checks: Mapping[str, Check] | None = None,
    temperature: float = 0.8,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, list[list[bool]]]:
    """Per check, per prompt, the verdicts of its `n` sampled completions (seeded; the training RNG untouched)."""
    import torch

    from trl_ext.inference.generation import generate_completions

    from .formal import compile_check, semantic_check

    checks = dict(checks) if checks is not None else formal_checks(compile_check, semantic_check)
    device = getattr(model, "device", torch.device("cpu"))
    with torch.random.fork_rng(devices=[device] if getattr(device, "type", "cpu") == "cuda" else []):
        torch.manual_seed(seed)
        outputs = generate_completions(
            model,
            tokenizer,
            list(prompts),
            max_new_tokens=max_new_tokens,
            batch_size=max(1, batch_size // n),
            progress=progress,
            do_sample=True,
            temperature=temperature,
            top_k=0,
            num_return_sequences=n,
        )
    texts = [o.text for o in outputs]
    return {
        name: [[check(p, t) for t in texts[i * n : (i + 1) * n]] for i, p in enumerate(prompts)]
        for name, check in checks.items()
    }


def _k_list(value: Any) -> list[int]:
    items = (
        value.split("+") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    )
    try:
        ks = [int(k) for k in items]
    except (TypeError, ValueError):
        raise ValueError(f"overlap_pass_at_k: k_list={value!r} must be integers joined by + (e.g. 1+8)") from None
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"overlap_pass_at_k: k_list={value!r} must hold integers >= 1")
    return ks


class OverlapPassAtKCallback(GenerationEvalCallback):
    """Samples `n` completions of the first `num_problems` prompts of `dataset_name`'s `split` and logs
    `eval/compile_pass@k`, `eval/semantic_pass@k` and `eval/compile_semantic_gap@k` for each k of `k_list`.
    `compile_check` / `semantic_judge`: import paths ("pkg.mod:fn") of the user's checkers; default: the built-in
    formal_arith rules."""

    label = "overlap_pass_at_k"

    def __init__(
        self,
        dataset_name: str = "builtin:formal_arith",
        split: str = "test",
        num_problems: int = 32,
        n: int = 8,
        k_list: Any = "1+8",
        temperature: float = 0.8,
        max_new_tokens: int = 32,
        batch_size: int = 16,
        seed: int = 0,
        compile_check: Any = None,
        semantic_judge: Any = None,
        progress: bool = False,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
    ) -> None:
        for name, value in (("num_problems", num_problems), ("n", n), ("max_new_tokens", max_new_tokens),
                            ("batch_size", batch_size)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"overlap_pass_at_k: {name}={value!r} must be an integer >= 1")
        self.k_list = _k_list(k_list)
        if n < max(self.k_list):
            raise ValueError(f"overlap_pass_at_k: n={n} samples cannot give pass@{max(self.k_list)} (needs n >= k)")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"overlap_pass_at_k: temperature={temperature!r} must be > 0 (pass@k samples)")
        super().__init__(every_n_steps, at_train_end)
        from .formal import compile_check as default_compile
        from .formal import semantic_check as default_semantic

        self.compile_check = _resolve(compile_check, "compile_check") or default_compile
        self.semantic_judge = _resolve(semantic_judge, "semantic_judge") or default_semantic
        self.dataset_name = dataset_name if ":" in dataset_name or "/" in dataset_name else f"builtin:{dataset_name}"
        self.split, self.num_problems, self.n = split, num_problems, n
        self.temperature, self.max_new_tokens, self.batch_size = float(temperature), max_new_tokens, batch_size
        self.seed, self.progress = seed, progress
        self._prompts: list[Any] | None = None

    def prompts(self) -> list[Any]:
        if self._prompts is None:
            from trl_ext.evaluation.callback import eval_rows

            rows = eval_rows(self.dataset_name, self.split, self.label, ("prompt",), self.num_problems)
            self._prompts = [row["prompt"] for row in rows]
        return self._prompts

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        verdicts = sampled_verdicts(
            model,
            tokenizer,
            self.prompts(),
            self.n,
            formal_checks(self.compile_check, self.semantic_judge),
            self.temperature,
            self.max_new_tokens,
            self.batch_size,
            self.seed,
            self.progress,
        )
        return self.item_means(pass_at_k_items(verdicts, self.k_list))


def _resolve(value: Any, option: str) -> Any:
    if value is None or callable(value):
        return value
    from trl_ext.plugin.lazy import import_object, is_import_path

    if not is_import_path(value):
        raise ValueError(f"overlap_pass_at_k: {option}={value!r} must be a callable or 'package.module:function'")
    try:
        obj = import_object(value)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"overlap_pass_at_k: {option}={value!r} does not import: {exc}") from None
    if not callable(obj):
        raise ValueError(f"overlap_pass_at_k: {option}={value!r} is not callable")
    return obj
