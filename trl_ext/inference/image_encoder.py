"""Frozen CLIP-like dual encoders (CLIP, SigLIP, any transformers model with `get_image_features` and
`get_text_features`): L2-normalised image and text embeddings, batched, in eval mode without gradients.

Plugins that score text against images (a reward, a zero-shot baseline) take the encoder as a user-supplied Hub id or
local folder, loaded once per process through the core's model resolution (`trl_ext.models.resolve_model_path`:
local folders, the Hub cache, the offline checks). No such encoder ships with trl-ext.

Images may be PIL images, file paths (these two need Pillow), numpy arrays or torch tensors (H×W×C or C×H×W, or
nested lists of them; integer values are rescaled by the processor's factor, float values are taken as already in [0, 1]). With Pillow installed the
model's own image processor preprocesses them (exactly what the model was trained with); without it, the same steps
(resize, center crop, rescale, normalise) run in torch from the folder's `preprocessor_config.json` (bicubic resize
with antialiasing: close to, not bit-identical with, PIL's).

Text is tokenised with the model's tokenizer, truncated to the text tower's positions; SigLIP models pad to
"max_length" as they were trained (their pooled output reads the last position), others pad to the longest text.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trl_ext.models import ModelLoadError, default_device, resolve_model_path

logger = logging.getLogger(__name__)

# CLIP's processor defaults (OpenAI), used when a folder has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImagePreprocessing:
    """The image processor's steps, read from `preprocessor_config.json` (transformers' field names)."""

    size: tuple[int, int] | int  # (height, width), or the shortest edge
    crop: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rescale_factor: float = 1 / 255

    @classmethod
    def from_config(cls, config: dict[str, Any], image_size: int, siglip: bool) -> ImagePreprocessing:
        size_cfg = config.get("size") if config.get("do_resize", True) else None
        if isinstance(size_cfg, dict) and "shortest_edge" in size_cfg:
            size: tuple[int, int] | int = int(size_cfg["shortest_edge"])
        elif isinstance(size_cfg, dict) and "height" in size_cfg:
            size = (int(size_cfg["height"]), int(size_cfg["width"]))
        elif isinstance(size_cfg, int):
            size = size_cfg
        else:
            size = (image_size, image_size) if siglip else image_size
        crop = None
        if config.get("do_center_crop", not siglip):
            crop_cfg = config.get("crop_size", image_size)
            if isinstance(crop_cfg, dict):
                crop = (int(crop_cfg.get("height", image_size)), int(crop_cfg.get("width", image_size)))
            else:
                crop = (int(crop_cfg), int(crop_cfg))
        default_mean, default_std = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) if siglip else (CLIP_MEAN, CLIP_STD)
        mean = tuple(config.get("image_mean", default_mean)) if config.get("do_normalize", True) else (0.0,) * 3
        std = tuple(config.get("image_std", default_std)) if config.get("do_normalize", True) else (1.0,) * 3
        factor = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
        return cls(size=size, crop=crop, mean=mean, std=std, rescale_factor=factor)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """One image as a float C×H×W tensor on its value scale (0-255 for uint8 input) -> pixel values."""
        x = image.float().unsqueeze(0)
        if isinstance(self.size, int):
            h, w = x.shape[-2:]
            scale = self.size / min(h, w)
            target = (max(1, round(h * scale)), max(1, round(w * scale)))
        else:
            target = self.size
        if tuple(x.shape[-2:]) != tuple(target):
            x = torch.nn.functional.interpolate(x, size=target, mode="bicubic", antialias=True, align_corners=False)
        if self.crop is not None:
            ch, cw = self.crop
            h, w = x.shape[-2:]
            if h < ch or w < cw:  # the processors pad a too-small image with zeros
                x = torch.nn.functional.pad(x, (0, max(0, cw - w), 0, max(0, ch - h)))
                h, w = x.shape[-2:]
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[..., top : top + ch, left : left + cw]
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((x * self.rescale_factor - mean) / std)[0]


def pil_available() -> bool:
    return importlib.util.find_spec("PIL") is not None


def image_tensor(image: Any) -> tuple[torch.Tensor, bool]:
    """An image as a float C×H×W tensor with 3 channels, and whether its values are 0-255 (uint8 input).

    Raises ValueError (TypeError for an unknown type) for what is not an image, so a caller can score it as such.
    """
    import numpy as np

    if isinstance(image, (str, Path)):
        if not pil_available():
            raise ValueError(f"reading the image file {str(image)!r} needs Pillow (pip install pillow)")
        from PIL import Image

        try:
            with Image.open(image) as opened:
                image = opened.convert("RGB")
        except OSError as exc:  # missing, unreadable or not an image
            raise ValueError(f"cannot read the image file {str(image)!r}: {exc}") from None
    if type(image).__module__.startswith("PIL."):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, (list, tuple)):  # an array stored in a dataset column without an Image feature
        try:
            image = np.asarray(image)
        except ValueError as exc:  # ragged
            raise ValueError(f"not an image: {exc}") from None
        if image.dtype == object or not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
            raise ValueError(f"not an image: an array of {image.dtype}")
    if isinstance(image, np.ndarray):
        # integer pixels are on the 0-255 scale (a list column of uint8 values comes back as int64)
        eight_bit = bool(np.issubdtype(image.dtype, np.integer))
        tensor = torch.from_numpy(np.ascontiguousarray(image))
    elif isinstance(image, torch.Tensor):
        eight_bit = image.dtype == torch.uint8
        tensor = image.detach().cpu()
    else:
        raise TypeError(f"not an image: {type(image).__name__}")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(-1)
    if tensor.ndim != 3:
        raise ValueError(f"an image has 2 or 3 dimensions, got shape {tuple(tensor.shape)}")
    if tensor.shape[-1] in (1, 3, 4) and tensor.shape[0] not in (1, 3, 4):
        tensor = tensor.permute(2, 0, 1)  # H×W×C -> C×H×W
    elif tensor.shape[0] not in (1, 3, 4):
        raise ValueError(f"cannot tell the channel axis of an image of shape {tuple(tensor.shape)}")
    tensor = tensor[:3] if tensor.shape[0] >= 3 else tensor.expand(3, *tensor.shape[1:])
    if min(tensor.shape[1:]) < 1:
        raise ValueError(f"empty image of shape {tuple(tensor.shape)}")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError("an image holds non-finite values")
    return tensor, eight_bit


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns a ModelOutput whose pooler_output is the projected embedding; 4.x returned the tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@dataclass
class DualEncoder:
    """A loaded dual encoder: `encode_images` / `encode_texts` give L2-normalised float32 rows on the CPU."""

    model: Any
    tokenizer: Any
    image_processor: Any | None
    preprocessing: ImagePreprocessing
    name_or_path: str
    text_padding: str = "longest"
    text_max_length: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def tokenize(self, texts: Sequence[str]) -> tuple[dict[str, torch.Tensor], list[bool]]:
        """Tokenizer inputs for `texts`, and which texts were cut at `text_max_length`."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        kwargs: dict[str, Any] = {"padding": self.text_padding, "return_tensors": "pt"}
        if self.text_max_length is not None:
            kwargs.update(truncation=True, max_length=self.text_max_length)
        enc = self.tokenizer(texts, **kwargs)
        if self.text_max_length is None:
            truncated = [False] * len(texts)
        else:
            lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]
            truncated = [n > self.text_max_length for n in lengths]
        return dict(enc), truncated

    @torch.no_grad()
    def encode_texts(
        self, texts: Sequence[str], batch_size: int = 32, return_truncated: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[bool]]:
        """Text embeddings t(x)/‖t(x)‖, one row per text (shape N×D); with `return_truncated`, also which texts were
        cut to the encoder's maximum length."""
        rows, cut = [], []
        for start in range(0, len(texts), batch_size):
            enc, truncated = self.tokenize(list(texts[start : start + batch_size]))
            cut += truncated
            allowed = ("input_ids", "attention_mask", "position_ids")
            inputs = {k: v.to(self.device) for k, v in enc.items() if k in allowed}
            if "siglip" in self.model.config.model_type:
                inputs.pop("attention_mask", None)  # SigLIP was trained without one (its processor drops it)
            rows.append(_features(self.model.get_text_features(**inputs)).float().cpu())
        embeds = self._normalise(rows)
        return (embeds, cut) if return_truncated else embeds

    @torch.no_grad()
    def encode_images(self, images: Sequence[Any], batch_size: int = 16) -> torch.Tensor:
        """Image embeddings u(v)/‖u(v)‖, one row per image (shape N×D)."""
        rows = []
        for start in range(0, len(images), batch_size):
            pixel_values = self.pixel_values(images[start : start + batch_size])
            pixel_values = pixel_values.to(self.device, self.dtype)
            rows.append(_features(self.model.get_image_features(pixel_values=pixel_values)).float().cpu())
        return self._normalise(rows)

    def pixel_values(self, images: Sequence[Any]) -> torch.Tensor:
        tensors = [image_tensor(image) for image in images]
        if self.image_processor is not None:
            arrays = [(t / (1.0 if eight_bit else self.preprocessing.rescale_factor)) for t, eight_bit in tensors]
            arrays = [a.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy() for a in arrays]
            return self.image_processor(images=arrays, return_tensors="pt")["pixel_values"]
        rescale = self.preprocessing.rescale_factor
        return torch.stack([self.preprocessing(t if eight_bit else t / rescale) for t, eight_bit in tensors])

    def _normalise(self, rows: list[torch.Tensor]) -> torch.Tensor:
        if not rows:
            return torch.zeros(0, self.embedding_dim)
        return torch.nn.functional.normalize(torch.cat(rows), dim=-1)

    @property
    def embedding_dim(self) -> int:
        config = self.model.config
        return int(getattr(config, "projection_dim", None) or config.text_config.hidden_size)


def load_dual_encoder(
    name_or_path: str, device: str | torch.device | None = None, text_padding: str | None = None
) -> DualEncoder:
    """The dual encoder `name_or_path` (Hub id or local folder), loaded once per process and device: frozen, in eval
    mode, float32 on the CPU and bfloat16 on an accelerator."""
    return _load(str(name_or_path), str(device) if device is not None else None, text_padding)


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, device: str | None, text_padding: str | None) -> DualEncoder:
    from transformers import AutoModel, AutoTokenizer

    target = torch.device(device) if device is not None else torch.device(default_device())
    dtype = torch.float32 if target.type == "cpu" else torch.bfloat16
    path = resolve_model_path(name_or_path)
    try:
        model = AutoModel.from_pretrained(path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ModelLoadError(f"Could not load the dual encoder {name_or_path!r}: {exc}") from None
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ModelLoadError(
            f"{name_or_path!r} is a {type(model).__name__}, not a dual encoder: it needs get_image_features and "
            "get_text_features (CLIP, SigLIP and similar models have them)."
        )
    model.requires_grad_(False).eval().to(target)
    config = model.config
    siglip = "siglip" in config.model_type
    vision = getattr(config, "vision_config", None)
    image_size = int(getattr(vision, "image_size", 224))
    processor_config: dict[str, Any] = {}
    config_file = Path(path) / "preprocessor_config.json"
    if config_file.is_file():
        processor_config = json.loads(config_file.read_text())
    preprocessing = ImagePreprocessing.from_config(processor_config, image_size, siglip)
    image_processor = None
    if pil_available():
        try:
            from transformers import AutoImageProcessor

            image_processor = AutoImageProcessor.from_pretrained(path)
        except (OSError, ValueError, ImportError) as exc:
            logger.info("No image processor loaded for %s (%s); preprocessing in torch", name_or_path, exc)
    text_config = getattr(config, "text_config", None)
    max_length = getattr(text_config, "max_position_embeddings", None)
    padding = text_padding or ("max_length" if siglip else "longest")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return DualEncoder(
        model=model,
        tokenizer=tokenizer,
        image_processor=image_processor,
        preprocessing=preprocessing,
        name_or_path=name_or_path,
        text_padding=padding,
        text_max_length=int(max_length) if max_length else None,
        device=target,
    )
