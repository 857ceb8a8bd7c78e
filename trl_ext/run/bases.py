"""Training bases: the TRL trainer a method builds on, as one registered object each.

A base owns what the CLI, the runner, the checks and the bench would otherwise each switch on with a string: the
dataset form a built-in dataset is loaded in, the column shapes the trainer accepts, whether it takes reward
functions, the extra trainer arguments, and the TRL trainer `trl-ext bench` compares against. A new kind of trainer
(RLOO, distillation, SFT+GRPO) registers a base instead of editing five files. Nothing here imports torch or TRL until
a base is used, so listing and help stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trl_ext.plugin.lazy import import_object


class UnknownBaseError(ValueError):
    pass


@dataclass(frozen=True)
class TrainingBase:
    """One TRL trainer family.

    Args:
        name: the name methods give as `Method(base=...)`.
        trl_command: the `trl` subcommand whose flags apply (default: `name`; a hybrid base names its TRL trainer's).
        trainer: TRL's own trainer, as "module:Class" (imported on use): the bench's reference and `trl-ext info`'s.
        column_shapes: each a set of columns the trainer accepts as its dataset (one of them must be present).
        dataset_form: the shape a built-in dataset is loaded in.
        takes_rewards: whether the trainer takes `reward_funcs` (then `--rewards`, `--reward_funcs` or
            `--reward_model_name_or_path` is required, else refused).
        cli_defaults: flag defaults for this base's parser (e.g. a shorter completion for GRPO on CPU).
        extra_kwargs: "module:function" called as `function(stage, model, tokenizer) -> dict` for trainer arguments
            that are neither config fields nor rewards (a teacher model, an expert dataset: objects a config would
            pickle into every checkpoint). Imported on use.
    """

    name: str
    trainer: str
    column_shapes: tuple[tuple[str, ...], ...]
    dataset_form: str
    takes_rewards: bool = False
    cli_defaults: dict[str, Any] = field(default_factory=dict)
    extra_kwargs: str | None = None
    trl_command: str | None = None

    @property
    def command(self) -> str:
        """The `trl` subcommand whose flags this base's methods take."""
        return self.trl_command or self.name

    def shapes_for(self, config: Any) -> list[tuple[str, ...]]:
        """The accepted column shapes under `config` (SFT reads its text column's name from the config)."""
        text_field = getattr(config, "dataset_text_field", "text")
        return [tuple(text_field if c == "text" else c for c in shape) for shape in self.column_shapes]

    def reference_trainer(self) -> type:
        return import_object(self.trainer)

    def trainer_kwargs(
        self, rewards: Sequence[Any], stage: Any = None, model: Any = None, tokenizer: Any = None
    ) -> dict[str, Any]:
        """Keyword arguments this base's trainer takes beyond model/args/datasets/processing class/PEFT/callbacks.
        `rewards` are the built rewards in --reward_weights order: callables, and reward-model ids (str) that TRL's
        trainer loads itself, as `trl grpo` passes them. `stage`, `model`, `tokenizer`: what `extra_kwargs` builds
        from."""
        kwargs: dict[str, Any] = {"reward_funcs": list(rewards)} if self.takes_rewards else {}
        if self.extra_kwargs:
            kwargs.update(import_object(self.extra_kwargs)(stage, model, tokenizer))
        return kwargs


_BASES: dict[str, TrainingBase] = {}


def register_base(base: TrainingBase) -> TrainingBase:
    if base.name in _BASES and _BASES[base.name] != base:
        raise ValueError(f"Training base {base.name!r} is already registered differently.")
    _BASES[base.name] = base
    return base


def training_base(name: str) -> TrainingBase:
    try:
        return _BASES[name]
    except KeyError:
        raise UnknownBaseError(
            f"Unknown training base {name!r}; registered bases: {', '.join(sorted(_BASES))}."
        ) from None


SFT = register_base(
    TrainingBase(
        name="sft",
        trainer="trl:SFTTrainer",
        column_shapes=(("messages",), ("prompt", "completion"), ("text",), ("input_ids",)),
        dataset_form="sft",
    )
)
GRPO = register_base(
    TrainingBase(
        name="grpo",
        trainer="trl:GRPOTrainer",
        column_shapes=(("prompt",),),
        dataset_form="grpo",
        takes_rewards=True,
    )
)
RLOO = register_base(
    TrainingBase(
        name="rloo",
        trainer="trl:RLOOTrainer",
        column_shapes=(("prompt",),),
        dataset_form="grpo",
        takes_rewards=True,
    )
)
DPO = register_base(
    TrainingBase(
        name="dpo",
        trainer="trl:DPOTrainer",
        column_shapes=(("chosen", "rejected"),),
        dataset_form="dpo",
    )
)
SFT_GRPO = register_base(
    TrainingBase(
        name="sft_grpo",
        trainer="trl:GRPOTrainer",
        column_shapes=(("prompt",),),
        dataset_form="grpo",
        takes_rewards=True,
        extra_kwargs="trl_ext.training.expert:expert_trainer_kwargs",
        trl_command="grpo",
    )
)
DISTILLATION = register_base(
    TrainingBase(
        name="distillation",
        trainer="trl:DistillationTrainer",
        column_shapes=(("prompt",),),
        dataset_form="grpo",
        extra_kwargs="trl_ext.training.teacher:teacher_kwargs",
    )
)
