"""SpIELTrainer: SFTTrainer (loss unchanged) on a SpIEL-wrapped model, with SpIELAdamW and the drop/regrow schedule."""

from __future__ import annotations

from transformers import AutoModelForCausalLM
from trl import SFTTrainer

from .callback import SpIELCallback, spiel_optimizer
from .config import SpIELConfig
from .paper import PAPER
from .support import spiel_layers, wrap_spiel


class SpIELTrainer(SFTTrainer):
    """SFT of SpIEL's sparse deltas. The model is wrapped with a SpIEL adapter unless it already carries one
    (`--adapter spiel` gives options); the drop/regrow runs in a bound `SpIELCallback`."""

    _name = "SpIEL"
    _tag_names = ["trl", "sft", "trl-ext", "spiel"]
    config_class = SpIELConfig
    _spiel_creates_optimizer = True

    def __init__(self, model, args: SpIELConfig | None = None, *posargs, peft_config=None, **kwargs):
        if args is None:
            args = SpIELConfig(output_dir="spiel-output")
        if not isinstance(args, SpIELConfig):
            raise TypeError(f"SpIELTrainer needs a SpIELConfig, got {type(args).__name__}")
        if peft_config is not None:
            raise ValueError(
                f"SpIELTrainer trains sparse deltas, not a {type(peft_config).__name__}: drop --use_peft (the budget "
                "is --density / --num_tunable)."
            )
        if isinstance(model, str):
            model = AutoModelForCausalLM.from_pretrained(model)
        if not spiel_layers(model):
            seed = args.spiel_seed if args.spiel_seed is not None else args.seed
            model = wrap_spiel(model, args.density, args.num_tunable, args.target_modules, seed)
        super().__init__(model, args, *posargs, **kwargs)
        self.spiel = SpIELCallback(
            args.reselection_steps,
            args.selection_accumulation_steps,
            args.initial_reselection_rate,
            args.reselection_rate_policy,
        )
        self.add_callback(self.spiel)
        self.spiel.bind(self)

    @property
    def _paper(self) -> dict[str, str | None]:
        return {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            self.optimizer = spiel_optimizer(self.model, self.args)
        return self.optimizer
