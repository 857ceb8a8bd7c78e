"""The teacher of a distillation run: loaded through the core's model loading (built-in aliases, local folders, Hub
ids, as the student), and checked against the student before any weight is read. The divergence compares the two
models' whole next-token distributions token id by token id, so both must have the same vocabulary size and, when
the teacher ships a tokenizer, the same token for every id; anything else would train silently on nonsense.

`teacher_kwargs` is the `extra_kwargs` of the `distillation` training base (`trl_ext.run.bases`): the teacher is a
trainer argument, never a config field (a config is pickled into every checkpoint). The trainer freezes it (eval
mode, no gradients) and prepares it for the engine (`accelerator.prepare_model`, or DeepSpeed for ZeRO-3).
"""

from __future__ import annotations

import logging
from typing import Any

from trl_ext.models import check_model_path, load_model, load_tokenizer, resolve_model_path

logger = logging.getLogger(__name__)


class TeacherError(ValueError):
    pass


def teacher_kwargs(stage: Any, model: Any, tokenizer: Any) -> dict[str, Any]:
    """`{"teacher_model": ...}` for a DistillationTrainer (or subclass) built from `stage`: the teacher named by the
    config's `teacher_model_name_or_path`, loaded and checked by `load_teacher`."""
    config = stage.config
    teacher = load_teacher(
        getattr(config, "teacher_model_name_or_path", None),
        model,
        tokenizer,
        revision=getattr(config, "teacher_model_revision", None),
        init_kwargs=getattr(config, "teacher_model_init_kwargs", None),
        trust_remote_code=getattr(config, "trust_remote_code", False),
        method=stage.method.name,
    )
    return {"teacher_model": teacher}


def load_teacher(
    name_or_path: str | None,
    student: Any,
    tokenizer: Any = None,
    *,
    revision: str | None = None,
    init_kwargs: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    method: str = "distillation",
):
    """The frozen teacher at `name_or_path`, in the student's dtype unless `init_kwargs` says otherwise.

    Refused before its weights are read: no teacher named, a folder that does not exist, a vocabulary size that
    differs from the student's, or a tokenizer (when the teacher folder has one) that maps some id to another token
    than `tokenizer` does."""
    if not name_or_path:
        raise TeacherError(
            f"`trl-ext train {method}` distils from a teacher: give --teacher_model_name_or_path (a model that shares "
            "the student's tokenizer and vocabulary, e.g. the student's family, larger or fine-tuned on the task)."
        )
    check_model_path(name_or_path)
    check_teacher_vocabulary(name_or_path, student, tokenizer, revision=revision, trust_remote_code=trust_remote_code)
    kwargs: dict[str, Any] = {"dtype": getattr(student, "dtype", None), "trust_remote_code": trust_remote_code}
    if revision is not None:
        kwargs["revision"] = revision
    kwargs.update(init_kwargs or {})
    teacher = load_model(name_or_path, **{k: v for k, v in kwargs.items() if v is not None})
    return teacher.eval().requires_grad_(False)


def _vocab_size(config: Any) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.vocab_size)


def check_teacher_vocabulary(
    name_or_path: str,
    student: Any,
    tokenizer: Any = None,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> None:
    """Raise `TeacherError` when the teacher's vocabulary (read from its config and tokenizer, no weights) differs
    from the student's."""
    from transformers import AutoConfig

    path = resolve_model_path(name_or_path)
    config = AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    teacher_size, student_size = _vocab_size(config), _vocab_size(student.config)
    if teacher_size != student_size:
        raise TeacherError(
            f"The teacher {name_or_path!r} has vocab_size {teacher_size} but the student has {student_size}: "
            "distillation compares the two next-token distributions id by id, so they must share one vocabulary. "
            "Use a teacher from the student's family (or the student fine-tuned on the task)."
        )
    if tokenizer is None:
        return
    try:
        teacher_tokenizer = load_tokenizer(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:  # a weights-only folder: the size check above is all we have
        logger.info("No tokenizer with the teacher %s (%s): checked its vocabulary size only.", name_or_path, exc)
        return
    ours, theirs = tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if ours != theirs:
        differing = sorted(set(ours.items()) ^ set(theirs.items()), key=lambda item: item[1])
        example = ", ".join(f"{token!r}->{i}" for token, i in differing[:3])
        raise TeacherError(
            f"The teacher {name_or_path!r} has another tokenizer than the student ({len(differing)} token/id pairs "
            f"differ, e.g. {example}): the teacher would score other tokens than the student generated. Use a teacher "
            "with the student's tokenizer."
        )
