"""CLS-RL's prompt transform and a CLIP zero-shot baseline over the same rows.

`build_cls_prompts` turns labelled classification rows (`class_names`, `label`, optionally `context`, `question`,
`image`) into GRPO rows: a conversational `prompt` holding the question that lists the classes plus the mode's
official instruction, and `solution` = "<answer>gold</answer>". An `image` column is kept as is: TRL's GRPOTrainer
inserts it into the user message when the policy is a vision-language model (the paper's setting).

`cls_clip_zero_shot` labels each row with a frozen CLIP-like encoder's zero-shot prediction (the image against
"a photo of a {class}."): the classical baseline for the same few-shot data, no training involved.
"""

from __future__ import annotations

import reprlib
from typing import Any

from .config import SUFFIXES, ClsRLConfig


def gold_class(row: dict[str, Any]) -> str:
    """The gold class name of a row: `label` as an index into `class_names`, or a class name itself."""
    names, label = row.get("class_names"), row.get("label")
    if isinstance(label, bool) or label is None:
        raise ValueError(f"row has no usable 'label' ({label!r}); give a class index or a class name")
    if isinstance(label, int):
        if not isinstance(names, (list, tuple)) or not 0 <= label < len(names):
            raise ValueError(f"label {label} is not an index into class_names {reprlib.repr(names)}")
        return str(names[label])
    if isinstance(label, str) and label.strip():
        return label.strip()
    raise ValueError(f"label {label!r} must be a class index or a non-empty class name")


def question_text(row: dict[str, Any], config: ClsRLConfig) -> str:
    """q: the row's own `question` when it has one, else the template filled with its class names, after the row's
    `context` (a text description standing in for the image in text-only settings) when it has one."""
    question = row.get("question")
    if isinstance(question, str) and question.strip():
        return question
    names = row.get("class_names")
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"class_names must be a non-empty list of strings, got {reprlib.repr(names)}")
    question = config.question_template.replace("{classes}", ", ".join(names))
    context = row.get("context")
    return f"{context.strip()}\n{question}" if isinstance(context, str) and context.strip() else question


def cls_prompt_row(row: dict[str, Any], config: ClsRLConfig) -> dict[str, Any]:
    """One labelled row -> `prompt` (a user message: q + the mode's suffix) and `solution`."""
    text = question_text(row, config) + SUFFIXES[config.mode]
    if len(text) > config.max_prompt_chars:
        raise ValueError(
            f"build_cls_prompts: a prompt of {len(text)} characters exceeds max_prompt_chars={config.max_prompt_chars} "
            "(GRPO never truncates prompts); shorten the class list or raise the option"
        )
    tag = config.answer_tag
    return {"prompt": [{"role": "user", "content": text}], "solution": f"<{tag}>{gold_class(row)}</{tag}>"}


def build_cls_prompts(config: ClsRLConfig | None = None, **fields: Any):
    """Build the transform `fn(dataset) -> dataset` (a `datasets.Dataset` or `DatasetDict`) for `mode` "think"
    (CLS-RL) or "no_think" (No-Thinking-CLS-RL); `prompt` and `solution` are replaced, other columns kept."""
    if config is not None and fields:
        raise ValueError(f"give either config or its fields, not both (got {', '.join(sorted(fields))})")
    config = config if config is not None else ClsRLConfig(**fields)

    def transform(dataset):
        from datasets import DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        drop = [c for c in ("prompt", "solution") if c in dataset.column_names]
        return dataset.map(cls_prompt_row, fn_kwargs={"config": config}, remove_columns=drop)

    return transform


CLIP_TEMPLATE = "a photo of a {}."


def clip_zero_shot(
    images: list[Any], class_names: list[list[str]], encoder: Any, template: str = CLIP_TEMPLATE
) -> list[str]:
    """The class whose prompt `template.format(name)` is closest (cosine) to each image, per row's class list."""
    import torch

    image_embeds = encoder.encode_images(images)
    cache: dict[tuple[str, ...], torch.Tensor] = {}
    predictions = []
    for u, names in zip(image_embeds, class_names, strict=True):
        key = tuple(names)
        if key not in cache:
            cache[key] = encoder.encode_texts([template.format(n) for n in names])
        predictions.append(names[int(torch.argmax(cache[key] @ u))])
    return predictions


def cls_clip_zero_shot(
    encoder_name_or_path: str | None = None, template: str = CLIP_TEMPLATE, column: str = "clip_prediction"
):
    """Build the transform adding `column`, the encoder's zero-shot class for each row's `image` among its
    `class_names` (and `clip_correct`, 1/0 against the gold `label`, when the rows have one)."""
    if not encoder_name_or_path:
        raise ValueError("cls_clip_zero_shot needs encoder_name_or_path: a local CLIP/SigLIP folder or Hub id")
    if "{}" not in template:
        raise ValueError(f"template={template!r} must hold {{}} where the class name goes")

    def transform(dataset):
        from datasets import DatasetDict

        from trl_ext.inference import load_dual_encoder

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        encoder = load_dual_encoder(encoder_name_or_path)

        def label_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            out = {column: clip_zero_shot(batch["image"], batch["class_names"], encoder, template)}
            if "label" in batch:
                rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
                out["clip_correct"] = [
                    float(p.lower() == gold_class(r).lower()) for p, r in zip(out[column], rows, strict=True)
                ]
            return out

        out = dataset.map(label_batch, batched=True, batch_size=32)
        if "clip_correct" in out.column_names and len(out):
            transform.summary = {"zero-shot accuracy": sum(out["clip_correct"]) / len(out)}
        return out

    transform.summary = {}
    return transform
