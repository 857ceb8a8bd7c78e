"""`self_reward_log_ratio`: SRPPO's self-reward r(x, y) = log π_sft(y | x) − log π_pt(y | x) (arXiv:2510.21090).

TRL calls a reward with the prompts and the generated `completion_ids` but not the prompt's ids, so the prompt is
re-rendered exactly as the trainer tokenised it for generation (`RLOOTrainer`/`GRPOTrainer._tokenize_prompts` in TRL
1.16): a conversational prompt through the chat template with `add_generation_prompt=True` and the trainer's
`chat_template_kwargs`, a plain one through the tokenizer (special tokens as the tokenizer adds them). The completion
is scored on its generated ids, EOS included; ids ending without EOS (or pad) mark a truncated completion. Called
without ids (outside a trainer), the completion text is tokenised and EOS appended.

Both frozen models are loaded once per process through `trl_ext.inference.scoring.load_scorer` (whole on every
process, also under ZeRO-3; never seen by the trainer or its optimizer) and score in batches through
`token_logprobs`: log-probs only at the completion positions, through the LM head in vocabulary chunks, with the
prompt of a group's G completions run once (shared-prefix KV cache).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl.data_utils import is_conversational

from trl_ext.inference.scoring import load_scorer, token_logprobs
from trl_ext.models import BUILTIN_MODELS, resolve_model_path
from trl_ext.rewards import RewardFunction, RewardSetupError, log_metric

from .config import SelfRewardConfig

logger = logging.getLogger(__name__)


def render_prompt(tokenizer, prompt: Any, chat_template_kwargs: dict[str, Any] | None = None) -> list[int]:
    """The ids the trainer generated from for `prompt` (see the module docstring); raises on a prompt that is
    neither text nor a list of messages."""
    if isinstance(prompt, str):
        return list(tokenizer(text=prompt)["input_ids"])
    if isinstance(prompt, list) and prompt and is_conversational({"prompt": prompt}):
        rendered = tokenizer.apply_chat_template(
            conversation=list(prompt),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            **(chat_template_kwargs or {}),
        )
        return list(rendered["input_ids"])
    raise TypeError(f"a prompt must be text or a list of messages, got {type(prompt).__name__}")


def _valid_ids(ids: Any, vocab_size: int) -> list[int] | None:
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)):
        return None
    if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab_size for t in ids):
        return None
    return list(ids)


def _weights_folder(name: str) -> str:
    """Where `name`'s weights are: a built-in alias's cache folder or a local folder, symlinks resolved; a Hub id as
    given (nothing is looked up)."""
    path = Path(resolve_model_path(name) if name in BUILTIN_MODELS else name).expanduser()
    return os.path.realpath(path) if path.is_dir() else name


class SelfRewardLogRatio(RewardFunction):
    """SRPPO's self-reward (arXiv:2510.21090). Options are `SelfRewardConfig`'s fields, or `config=`; `tokenizer` and
    `chat_template_kwargs` (Python only) render prompts as the trainer does: default π_sft's tokenizer, which is the
    trainer's when the policy starts from π_sft (`SRPPOTrainer` binds its own processing class)."""

    name = "self_reward_log_ratio"

    def __init__(
        self,
        config: SelfRewardConfig | None = None,
        tokenizer: Any = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ):
        if config is not None and options:
            raise ValueError("self_reward_log_ratio: give either `config` or its fields as options, not both")
        self.config = config if config is not None else SelfRewardConfig(**options)
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._one_model: bool | None = None

    def bind(self, tokenizer: Any, chat_template_kwargs: dict[str, Any] | None = None) -> SelfRewardLogRatio:
        """Render prompts with the trainer's processing class and chat-template arguments."""
        self.tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor holds its tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        return self

    def scorers(self):
        """((π_sft, its tokenizer), (π_pt, its tokenizer)), loaded once per process; a vocabulary mismatch with the
        rendering tokenizer is a setup error."""
        cfg = self.config
        sft = load_scorer(cfg.sft_model_name_or_path, cfg.reward_dtype)
        base = load_scorer(cfg.base_model_name_or_path, cfg.reward_dtype)
        sizes = {
            "sft": sft[0].get_output_embeddings().weight.shape[0],
            "base": base[0].get_output_embeddings().weight.shape[0],
        }
        if sizes["sft"] != sizes["base"] or len(self.render_tokenizer()) > sizes["sft"]:
            raise RewardSetupError(
                f"self_reward_log_ratio: π_sft ({cfg.sft_model_name_or_path}, vocab {sizes['sft']}), π_pt "
                f"({cfg.base_model_name_or_path}, vocab {sizes['base']}) and the policy's tokenizer "
                f"({len(self.render_tokenizer())} tokens) must share one vocabulary."
            )
        return sft, base

    def one_model(self) -> bool:
        """π_sft and π_pt name the same weights (a built-in alias and its cached folder count as one), so every
        log-ratio is 0 without a forward."""
        if self._one_model is None:
            sft, base = self.config.sft_model_name_or_path, self.config.base_model_name_or_path
            self._one_model = sft == base or _weights_folder(sft) == _weights_folder(base)
        return self._one_model

    def render_tokenizer(self):
        if self.tokenizer is None:
            self.tokenizer = load_scorer(self.config.sft_model_name_or_path, self.config.reward_dtype)[1]
        return self.tokenizer

    def score(self, completion: str, **row: Any) -> float | None:  # one item: the batched path on a batch of one
        return self(prompts=[row.get("prompt")], completions=[completion], completion_ids=[row.get("completion_ids")])[
            0
        ]

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        cfg = self.config
        rewards: list[float | None] = [0.0] * len(texts)
        if not texts:
            return rewards
        (sft_model, _), _ = self.scorers()  # a setup error (missing model, vocab mismatch) raises here
        tokenizer = self.render_tokenizer()
        vocab_size = sft_model.get_output_embeddings().weight.shape[0]
        ends = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
        todo: list[tuple[int, list[int], list[int]]] = []  # (index, prompt ids, completion ids)
        truncated = [False] * len(texts)
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            if text is None:
                continue  # not a completion: 0.0
            try:
                prompt_ids = render_prompt(tokenizer, row["prompt"], self.chat_template_kwargs)
                ids = _valid_ids(row["completion_ids"], vocab_size)
                if ids is None:  # no generated ids (outside a trainer): the text, finished by EOS
                    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
                    if tokenizer.eos_token_id is not None:
                        ids.append(tokenizer.eos_token_id)
            except Exception as exc:  # one unrenderable item scores 0.0
                self._failed(exc)
                continue
            if not ids:
                continue  # nothing generated: a sum over no token, 0.0
            if len(prompt_ids) + len(ids) > cfg.reward_max_length:
                rewards[i] = None  # not applicable: too long to score
                continue
            truncated[i] = ids[-1] not in ends
            if truncated[i] and cfg.no_eos_reward is not None:
                rewards[i] = float(cfg.no_eos_reward)
                continue
            todo.append((i, prompt_ids, ids))
        if todo and self.one_model():
            for i, _, _ in todo:  # π_sft = π_pt: every log-ratio is 0, no forward needed
                rewards[i] = 0.0
        elif todo:
            try:
                self._score(todo, rewards, kwargs)
            except RewardSetupError:
                raise
            except Exception as exc:  # the scorer failing must not crash training: these items score 0.0
                self._failed(exc)
        log_metric(kwargs, "srppo/no_eos_frac", sum(truncated) / len(texts))
        return rewards

    def _score(self, todo: Sequence[tuple[int, list[int], list[int]]], rewards: list, kwargs: dict[str, Any]) -> None:
        cfg = self.config
        (sft_model, _), (base_model, _) = self.scorers()
        tokenizer = self.render_tokenizer()
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        sequences = [p + c for _, p, c in todo]
        masks = [[0] * len(p) + [1] * len(c) for _, p, c in todo]
        prefixes = [len(p) for _, p, _ in todo]
        per_model = [
            token_logprobs(
                model, sequences, masks, pad_id=pad_id, batch_size=cfg.reward_batch_size, prefix_lengths=prefixes
            )
            for model in (sft_model, base_model)
        ]
        logp_sft, logp_base, values, tokens = [], [], [], 0
        for (i, _, c), lp_sft, lp_base in zip(todo, *per_model, strict=True):
            # Eq. (card step 2): Σ_j log π_sft(y_j|x,y_<j) − log π_pt(y_j|x,y_<j), over the completion up to EOS.
            ratio = sum(a - b for a, b in zip(lp_sft, lp_base, strict=True))
            r = ratio / max(len(c), 1) if cfg.length_normalize else ratio
            r *= cfg.reward_scale
            if cfg.reward_clip is not None:
                r = min(max(r, -cfg.reward_clip), cfg.reward_clip)
            if not math.isfinite(r):
                r = 0.0
            rewards[i] = float(r)
            logp_sft.append(sum(lp_sft))
            logp_base.append(sum(lp_base))
            values.append(ratio)
            tokens += len(c)
        n = len(todo)
        log_metric(kwargs, "srppo/logp_sft", sum(logp_sft) / n)
        log_metric(kwargs, "srppo/logp_base", sum(logp_base) / n)
        log_metric(kwargs, "srppo/reward_mean", sum(rewards[i] for i, _, _ in todo) / n)
        log_metric(kwargs, "srppo/reward_per_token", sum(values) / max(tokens, 1))
