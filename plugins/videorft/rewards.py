"""VideoRFT's RL-stage rewards as TRL reward functions on trl_ext's reward toolkit.

- `vrft_accuracy_reward`: R_acc by the row's `problem_type` (multiple choice, numerical, OCR, free-form, regression).
- `vrft_format_reward`: R_fmt, the completion is <think>…</think><answer>…</answer>.
- `vrft_semantic_reward`: R_sem, how well the reasoning matches the visual input under a frozen dual encoder, zeroed
  when R_acc <= the gate (R_acc is computed inside, with the accuracy reward's own function).
- `vrft_length_bonus`: +0.2 per group member with R_acc > 0.1 and 320 <= length <= 512 tokens, when at least two
  members have R_acc > 0.1.

The official total R_acc + R_fmt + R_sem + R_len is the four rewards with unit weights.

A row whose gold cannot be used (`solution` or `problem_type` not text, a type outside `PROBLEM_TYPES`, an empty gold
answer, a numerical or regression gold that is no number) scores None, "not applicable" (ours: the official code has
no such rows and scores them 0), in the rewards that need R_acc: accuracy, length bonus, and the semantic reward when
gated on accuracy. The accuracy reward logs the share as `vrft/gold_error_rate`.
"""

from __future__ import annotations

import collections
import hashlib
import logging
from typing import Any

from trl_ext.rewards import RewardFunction, RewardSetupError, Scored, cap_text, column, completion_text, log_metric

from . import scoring
from .config import VideoRFTRewardConfig

logger = logging.getLogger(__name__)

# A gold answer is short; capping it bounds the word-level dynamic programs of the OCR and free-form scores.
MAX_GOLD_CHARS = 4096
VISUAL_COLUMNS = ("frames", "video", "image")


class _VRFTReward(RewardFunction):
    """A VideoRFT reward configured by the fields of `VideoRFTRewardConfig` (or a whole `config`)."""

    columns = ("solution", "problem_type")

    def __init__(self, config: VideoRFTRewardConfig | None = None, **fields: Any) -> None:
        if config is not None and fields:
            raise ValueError(f"give either config or its fields, not both (got {', '.join(sorted(fields))})")
        self.config = config if config is not None else VideoRFTRewardConfig(**fields)

    @staticmethod
    def _gold(row: dict[str, Any]) -> tuple[str, str] | None:
        """(problem_type, solution) of a row whose gold can be used, else None: either is not text, the type is
        not one of `PROBLEM_TYPES`, the gold answer is empty, or a numerical/regression gold is no finite number."""
        solution, problem_type = row.get("solution"), row.get("problem_type")
        if not isinstance(solution, str) or problem_type not in scoring.PROBLEM_TYPES:
            return None
        solution = cap_text(solution, MAX_GOLD_CHARS)
        gold = scoring.gold_answer(solution)
        if not gold:
            return None
        if problem_type in ("numerical", "regression") and scoring.normalize_number(gold) is None:
            return None
        return problem_type, solution

    @classmethod
    def _accuracy(cls, completion: str | None, row: dict[str, Any]) -> float | None:
        """R_acc of one item per its own `problem_type` (the official code uses the batch's first item's type for
        every item); 0 for a completion that is not text, None for a row whose gold cannot be used (`_gold`)."""
        if completion is None:
            return 0.0
        gold = cls._gold(row)
        if gold is None:
            return None
        return scoring.accuracy(gold[0], completion, gold[1])


class VRFTAccuracyReward(_VRFTReward):
    """R_acc by `problem_type`; an answer that does not parse scores 0, a row whose gold cannot be used None."""

    name = "vrft_accuracy_reward"

    def score(self, completion: str, **row: Any) -> Scored:
        value = self._accuracy(completion, row)
        return Scored(value, {"vrft/gold_error_rate": float(value is None)})


class VRFTFormatReward(_VRFTReward):
    """R_fmt = 1 iff the completion fully matches <think>.*?</think>\\s*<answer>.*?</answer> (DOTALL)."""

    name = "vrft_format_reward"
    columns = ()

    def score(self, completion: str, **row: Any) -> float:
        return float(scoring.format_ok(completion))


class VRFTLengthBonus(_VRFTReward):
    """The official `len_control`, per group of generations of one prompt."""

    name = "vrft_length_bonus"

    def __call__(self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any):
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        accuracies = [self._accuracy(text, row) for text, row in zip(texts, rows, strict=True)]
        # The official length is completion_mask.sum(): the EOS counts, as it does in GRPOTrainer's completion_ids.
        lengths = [len(r["completion_ids"]) if isinstance(r["completion_ids"], (list, tuple)) else -1 for r in rows]
        low, high = self.config.len_range
        out: list[float | None] = [0.0] * len(texts)
        for group in scoring.groups([r["prompt"] for r in rows], self.config.num_generations):
            bonus = scoring.length_bonus(
                [lengths[i] for i in group],
                [accuracies[i] or 0.0 for i in group],
                self.config.len_bonus,
                low,
                high,
                self.config.len_acc_threshold,
            )
            for i, value in zip(group, bonus, strict=True):
                out[i] = None if accuracies[i] is None else value  # no usable gold: not applicable
        if out:
            log_metric(kwargs, "vrft/len_bonus_rate", sum(v is not None and v != 0 for v in out) / len(out))
        return out


class VRFTSemanticReward(_VRFTReward):
    """R_sem = mean over frames of min(1, w·max(u(f)·t(T'), 0)), gated by R_acc; None for a row without a visual
    input (`frames`, `video` or `image`) or whose visual input cannot be read. The encoder (option
    `encoder_name_or_path`, required: a missing option or local folder is refused when the reward is built, before
    training) loads on the first batch that has visual input."""

    name = "vrft_semantic_reward"

    def __init__(self, config: VideoRFTRewardConfig | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        self._check_encoder_option()
        self._frame_cache: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._warned_visual = self._warned_no_visual = False

    def _check_encoder_option(self) -> None:
        from trl_ext.models import ModelLoadError, check_model_path

        if not self.config.encoder_name_or_path:
            raise RewardSetupError(
                f"reward {self.__name__!r} needs the option encoder_name_or_path: a local SigLIP/CLIP folder or Hub "
                "id, e.g. --rewards vrft_semantic_reward:encoder_name_or_path=/models/siglip-so400m-patch14-384"
            )
        try:
            check_model_path(self.config.encoder_name_or_path)
        except ModelLoadError as err:
            raise RewardSetupError(f"reward {self.__name__!r}: {err}") from None

    @property
    def encoder(self):
        from trl_ext.inference import load_dual_encoder

        self._check_encoder_option()
        return load_dual_encoder(self.config.encoder_name_or_path, self.config.device)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_frame_cache": collections.OrderedDict()}

    def __call__(self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any):
        completions = list(completions) if isinstance(completions, (list, tuple)) else []
        n = len(completions)
        for name in self.columns:
            column(kwargs, name, self.__name__, n)
        if not any(isinstance(kwargs.get(c), (list, tuple)) for c in VISUAL_COLUMNS):
            if not self._warned_no_visual:
                self._warned_no_visual = True
                logger.warning(
                    "reward %r: the dataset has none of the visual columns %s (frames: a list of images per row; "
                    "video: a path; image: an image or path); its rows score None (logged once)",
                    self.__name__,
                    ", ".join(VISUAL_COLUMNS),
                )
            # not applicable, except that a completion holding no text scores 0.0 like everywhere
            return [0.0 if completion_text(c) is None else None for c in completions]
        encoder = self.encoder  # a missing option or an encoder that cannot load fails the run here, loudly
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        # per item: cache keys of its frame embeddings, or None (no visual input; or, gated on R_acc, no usable gold)
        gate = self.config.gate_on_accuracy
        frames = [None if gate and self._gold(row) is None else self._frames(row, encoder) for row in rows]
        todo = [i for i in range(n) if texts[i] is not None and frames[i]]
        t_prime = [scoring.reasoning_text(texts[i], self.config.drop_first_sentence) for i in todo]
        text_embeds, truncated = encoder.encode_texts(t_prime, return_truncated=True) if todo else (None, [])
        out: list[float | None] = [0.0 if texts[i] is None or frames[i] else None for i in range(n)]
        raw_values, gated_zero = [], 0
        for k, i in enumerate(todo):
            t = text_embeds[k]
            similarities = [float(self._frame_cache[key] @ t) for key in frames[i]]
            raw = scoring.semantic_reward(similarities, self.config.w_scale)
            raw_values.append(raw)
            if self.config.gate_on_accuracy and self._accuracy(texts[i], rows[i]) <= self.config.acc_gate_threshold:
                gated_zero += 1
                raw = 0.0
            out[i] = raw
        if raw_values:
            log_metric(kwargs, "vrft/semantic_raw_mean", sum(raw_values) / len(raw_values))
            log_metric(kwargs, "vrft/gate_zero_frac", gated_zero / len(raw_values))
            log_metric(kwargs, "vrft/text_truncated_rate", sum(truncated) / len(truncated))
        return out

    def _frames(self, row: dict[str, Any], encoder: Any) -> list[str] | None:
        """The cache keys of the row's frame embeddings, encoding frames not seen yet (a row's G completions share
        them); None when the row has no readable visual input."""
        try:
            images = self._visual_input(row)
            if not images:
                return None
            keys = [self._key(image) for image in images]
            missing = [(key, image) for key, image in zip(keys, images, strict=True) if key not in self._frame_cache]
            if missing:
                embeds = encoder.encode_images([image for _, image in missing])
                for (key, _), u in zip(missing, embeds, strict=True):
                    self._frame_cache[key] = u
            for key in keys:
                self._frame_cache.move_to_end(key)
            while len(self._frame_cache) > 4096:
                self._frame_cache.popitem(last=False)
            return keys
        except RewardSetupError:
            raise
        except (ValueError, TypeError, OSError, RuntimeError, ImportError) as exc:
            if not self._warned_visual:
                self._warned_visual = True
                logger.warning(
                    "reward %r: a row's visual input cannot be read (%s: %s); such rows score None (logged once)",
                    self.__name__,
                    type(exc).__name__,
                    exc,
                )
            return None

    def _visual_input(self, row: dict[str, Any]) -> list[Any] | None:
        frames = row.get("frames")
        if isinstance(frames, (list, tuple)) and frames:
            return _evenly_spaced(list(frames), self.config.max_frames)
        video = row.get("video")
        if isinstance(video, str) and video:
            return self._video_frames(video)
        image = row.get("image")
        return [image] if image is not None else None

    def _video_frames(self, path: str) -> list[Any]:
        key = f"video:{path}:{self.config.max_frames}"
        if key not in self._frame_cache:
            from transformers.video_utils import load_video

            video, _ = load_video(path, num_frames=self.config.max_frames)
            self._frame_cache[key] = _evenly_spaced([frame for frame in video], self.config.max_frames)
        return self._frame_cache[key]

    @staticmethod
    def _key(image: Any) -> str:
        if isinstance(image, str):
            return f"path:{image}"
        from trl_ext.inference.image_encoder import image_tensor

        tensor, eight_bit = image_tensor(image)
        digest = hashlib.sha1(tensor.numpy().tobytes()).hexdigest()
        return f"pixels:{tuple(tensor.shape)}:{eight_bit}:{digest}"


def _evenly_spaced(frames: list[Any], k: int) -> list[Any]:
    """At most `k` frames, evenly spaced from the first to the last (the video sampler's choice)."""
    if len(frames) <= k:
        return frames
    if k == 1:
        return [frames[0]]
    return [frames[round(i * (len(frames) - 1) / (k - 1))] for i in range(k)]
