"""The recipe's two weight steps, as callbacks on the stages that produce the weights they read.

`past_extract` (on the source GRPO stage): v = theta_rl_S - theta_sft_S, the stage's weights when training ends minus
those it started from (plus a previous round's vector in iterative refinement, see pipeline.py), saved as
`skill_vector.safetensors` in the recipe's root; with the base model it also logs the card's orthogonality diagnostic
(`past/mean_abs_cos` between dW_sft = theta_sft_S - theta_0 and dW_rl = v) and `past/skill_norm`.

`past_inject` (on the target SFT stage): theta_final = theta_sft_T + lambda v when training ends, before the stage
saves its model, so the stage's output folder holds theta_final. It logs `past/target_acc_before` / `_after` (greedy
exact-match accuracy on held-out target questions) and the target documents' per-token NLL before and after (the
card's fluency check for lambda > 1).

Both record what they did in `past_state.json` in the recipe's root. Every process applies the same update (a
collective gather under ZeRO-3); only the main process writes files and evaluates.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .skill_vector import (
    DEFAULT_EXCLUDE,
    SkillVector,
    SkillVectorError,
    _selected,
    cosine_report,
    full_state,
    lora_skill_vector,
    mean_abs_cosine,
)

logger = logging.getLogger(__name__)

SKILL_FILE = "skill_vector.safetensors"
STATE_FILE = "past_state.json"


def recipe_root(args: Any) -> Path:
    """The folder above the stage's output folder: a recipe's root (`<root>/stage-N-<method>`)."""
    return Path(args.output_dir).resolve().parent


def under_root(value: str, args: Any) -> Path:
    """`value` as a path: absolute as given, else under the recipe's root (so `--output_dir` moves it too)."""
    path = Path(value)
    return path if path.is_absolute() else recipe_root(args) / path


def same_model(a: str, b: str) -> bool:
    """Whether two model names load the same weights (a built-in alias and its cached folder are one model)."""
    from trl_ext.models import resolve_model_path

    def where(name: str) -> str:
        try:
            resolved = resolve_model_path(name)
        except Exception:  # not resolvable here: compare as written
            return name
        return str(Path(resolved).resolve()) if Path(resolved).exists() else resolved

    return where(a) == where(b)


def record_state(root: Path, key: str, entry: dict[str, Any]) -> None:
    """Merge `entry` under `key` into `<root>/past_state.json`."""
    path = root / STATE_FILE
    state = json.loads(path.read_text()) if path.exists() else {}
    state[key] = entry
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True))


def _names(values: Any) -> tuple[str, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):
        return tuple(v for v in values.split("|") if v) if values else ()
    return tuple(values)


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "active_adapter")


def _log(state: Any, figures: dict[str, float], label: str) -> None:
    shown = ", ".join(f"{k}={v:.4g}" for k, v in figures.items())
    print(f"{label} at step {state.global_step}: {shown}", flush=True)
    state.log_history.append({**figures, "step": state.global_step})


class SkillExtractCallback(TrainerCallback):
    """Saves v = (weights at the end) - (weights at the start) [+ `previous`] when training ends."""

    def __init__(
        self,
        path: str | None = None,
        previous: str | None = None,
        base_model_name_or_path: str | None = None,
        include: Any = None,
        exclude: Any = DEFAULT_EXCLUDE,
    ) -> None:
        self.path, self.previous, self.base = path, previous, base_model_name_or_path
        self.include, self.exclude = _names(include), _names(exclude) or ()
        self._start: dict[str, Any] | None = None
        self.skill: SkillVector | None = None
        self.figures: dict[str, float] = {}

    def _selection(self, model: Any) -> list[str]:
        return [n for n, _ in model.named_parameters() if _selected(n, self.include, self.exclude)]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None or _is_peft(model):
            return  # a LoRA stage's delta is its adapter's, read when training ends
        names = self._selection(model)
        if state.global_step > 0:
            # Resumed from a checkpoint: the weights in memory are the checkpoint's, not theta_sft_S. The stage's
            # input model (the folder it was loaded from) is.
            from trl_ext.models import load_model

            start = getattr(model, "name_or_path", None)
            if not start:
                raise SkillVectorError("past_extract: resumed, and the stage's input model is not known")
            self._start = full_state(load_model(start), names)
        else:
            self._start = full_state(model, names)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        if _is_peft(model):
            adapter = model.active_adapter if isinstance(model.active_adapter, str) else model.active_adapter[0]
            skill = lora_skill_vector(model, adapter)
            start = None
        else:
            assert self._start is not None, "past_extract: on_train_begin did not run"
            start = self._start
            skill = SkillVector.from_state_dicts(full_state(model, list(start)), start, self.include, self.exclude)
        previous = SkillVector.load(under_root(self.previous, args)) if self.previous else None
        if previous is not None:
            skill = skill + previous
        self.skill, self._start = skill, None
        if not state.is_world_process_zero:
            return
        root = recipe_root(args)
        path = under_root(self.path or SKILL_FILE, args)
        skill.save(path)
        figures = {"past/skill_norm": skill.norm()}
        if self.base and start is not None:
            from trl_ext.models import load_model

            base = full_state(load_model(self.base), list(start))
            # theta_sft = the start minus the previous round's vector the start was given (none in plain PaST)
            sft_delta = {n: start[n] - base[n] - (previous.deltas[n] if previous else 0.0) for n in start}
            rl_delta = {n: skill.deltas[n] - (previous.deltas[n] if previous else 0.0) for n in start}
            figures["past/mean_abs_cos"] = mean_abs_cosine(cosine_report(sft_delta, rl_delta))
        self.figures = figures
        _log(state, figures, "past_extract")
        record_state(
            root,
            f"extract:{Path(args.output_dir).name}",
            {
                "skill_vector": str(path),
                "previous": self.previous,
                "base_model": self.base,
                "tensors": len(skill),
                **figures,
            },
        )


class SkillInjectCallback(TrainerCallback):
    """theta <- theta + lam * v when training ends (before the stage saves), with accuracy and NLL before and after."""

    def __init__(
        self,
        skill_vector: str | None = None,
        lam: float = 1.0,
        evaluate: bool = True,
        eval_dataset: str = "builtin:past_facts",
        eval_config: str | None = "target_qa",
        eval_split: str = "test",
        num_eval: int = 0,
        docs_config: str | None = "target_docs",
        docs_split: str = "test",
        max_new_tokens: int = 16,
        batch_size: int = 16,
    ) -> None:
        lam = float(lam)
        if not math.isfinite(lam):
            raise ValueError(f"past_inject: lam={lam!r} must be a finite number")
        if int(num_eval) < 0:
            raise ValueError(f"past_inject: num_eval={num_eval!r} must be >= 0 (0: every row)")
        self.skill_vector, self.lam, self.evaluate = skill_vector, lam, bool(evaluate)
        self.eval = (eval_dataset, eval_config, eval_split, int(num_eval))
        self.docs = (docs_config, docs_split)
        self.generation = {"max_new_tokens": int(max_new_tokens), "batch_size": int(batch_size)}
        self.figures: dict[str, float] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and _is_peft(model):
            raise SkillVectorError(
                "past_inject: this stage trains a peft adapter, and only the adapter would be saved, without the "
                "injected weights. Train the target stage full-weight, or inject in Python (SkillVector.apply on the "
                "merged model, or inject_lora_skill on adapters)."
            )
        path = self._path(args)
        if not path.is_file():  # fail before training, not after it
            raise FileNotFoundError(
                f"past_inject: no skill vector at {path} (past_extract or SkillVector.save writes one)"
            )
        self._check_base(args, model)

    def _path(self, args: Any) -> Path:
        return under_root(self.skill_vector or SKILL_FILE, args)

    def _check_base(self, args: Any, model: Any) -> None:
        """theta_sft_T must start from the theta_0 the vector's SFT stage started from (the card's first pitfall);
        a recipe run with another --model_name_or_path changes only the first stage's model."""
        state_path = recipe_root(args) / STATE_FILE
        start = getattr(model, "name_or_path", None)
        if not state_path.exists() or not start:
            return
        path = str(self._path(args))
        bases = {
            entry.get("base_model")
            for entry in json.loads(state_path.read_text()).values()
            if isinstance(entry, dict) and entry.get("skill_vector") == path and entry.get("base_model")
        }
        for base in bases:
            if not same_model(base, start):
                raise SkillVectorError(
                    f"past_inject: this stage starts from {start}, but the skill vector {path} was extracted with "
                    f"theta_0 = {base}. Source and target must share theta_0: set the recipe's base model (its "
                    "`&base` anchor) instead of --model_name_or_path."
                )

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        from trl_ext.training.sharding import is_sharded

        if model is None:
            return
        path = self._path(args)
        skill = SkillVector.load(path)
        measure = self.evaluate and state.is_world_process_zero and processing_class is not None
        if measure and is_sharded(model):
            logger.info("past_inject: no before/after evaluation on a sharded model (evaluate the saved model)")
            measure = False
        before = self.measure(model, processing_class) if measure else {}
        skill.apply(model, self.lam)
        after = self.measure(model, processing_class) if measure else {}
        if not state.is_world_process_zero:
            return
        figures = {"past/lam": self.lam, "past/skill_norm": skill.norm()}
        figures.update({k.replace("@", "_before"): v for k, v in before.items()})
        figures.update({k.replace("@", "_after"): v for k, v in after.items()})
        self.figures = figures
        _log(state, figures, "past_inject")
        record_state(
            recipe_root(args),
            f"inject:{Path(args.output_dir).name}",
            {"skill_vector": str(path), "output_dir": str(args.output_dir), **figures},
        )

    def measure(self, model: Any, tokenizer: Any) -> dict[str, float]:
        """Greedy exact-match accuracy on the held-out target questions, the share of answers that hold the city
        (correct but maybe verbose), and per-token NLL of held-out target docs (keys with "@" where before/after
        goes)."""
        from trl_ext.data import load_dataset
        from trl_ext.evaluation.judges import exact_match
        from trl_ext.inference.generation import generate
        from trl_ext.inference.scoring import sequence_logprobs

        from .rewards import contains_answer

        was_training = model.training
        model.eval()
        try:
            name, config, split, num_eval = self.eval
            rows = load_dataset(name, config)[split]
            if num_eval:
                rows = rows.select(range(min(num_eval, len(rows))))
            texts = generate(model, tokenizer, list(rows["prompt"]), progress=False, **self.generation)
            pairs = list(zip(rows["prompt"], texts, rows["answer"], strict=True))
            n = max(len(pairs), 1)
            figures = {
                "past/target_acc@": sum(exact_match(p, t, a) for p, t, a in pairs) / n,
                "past/target_contains@": sum(contains_answer(t, a) for _, t, a in pairs) / n,
            }
            docs_config, docs_split = self.docs
            if docs_config:
                docs = load_dataset(name, docs_config)[docs_split]["text"]
                scored = sequence_logprobs(model, tokenizer, [""] * len(docs), list(docs), 8, progress=False)
                tokens = sum(s["num_tokens"] for s in scored)
                figures["past/target_doc_nll@"] = -sum(s["sum_logprob"] for s in scored) / max(tokens, 1)
            return figures
        finally:
            model.train(was_training)
