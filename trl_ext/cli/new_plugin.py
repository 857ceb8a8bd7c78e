"""`trl-ext new-plugin`: write a working plugin for a new paper, ready to be filled in and installed.

By default it writes an installable distribution `trl-ext-<slug>` (the three README commands: `trl-ext new-plugin
my_loss`, `pip install -e ./my_loss`, `trl-ext train my_loss`):

    <slug>/pyproject.toml         setuptools, `dependencies = ["trl-ext"]`, the `trl_ext` entry point `<slug> = "<slug>"`
    <slug>/README.md              the paper, usage, fidelity, demo, citation (to fill in)
    <slug>/<slug>/                the package: `__init__.py` (hook implementations, naming the trainer and config by
                                  import path so that registering imports no torch), `paper.py` (PAPER), `config.py`
                                  (on `FusedSFTConfig`), `trainer.py` (on `FusedSFTTrainer`: `compute_loss` is the
                                  paper's loss, the base does the rest)
    <slug>/tests/test_<slug>.py   passes as generated, installed or not

`--builtin` writes the plugin folder of trl-ext's own `plugins/<slug>/` instead (the modules, README.md and the test
side by side, as `plugins/asft/`), whose README says how to add it to trl-ext's pyproject. The templates below are
plain text: only the placeholders `{slug}`, `{name}` and `{dist}` are substituted, every other brace is written as is.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import os
import re
import sys
from pathlib import Path

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
KINDS = ("method",)

INIT_TEMPLATE = '''\
"""{name}: TODO one line on what the paper changes in training (arXiv TODO)."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# The trainer and config import TRL and torch, and this module runs on every `trl-ext` command (`list`, `--help`):
# the record names them by import path, imported on first use; `from <package> import {name}Trainer` still works.
__getattr__, __dir__ = lazy_exports(__name__, {"{name}Config": ".config", "{name}Trainer": ".trainer"})


@hookimpl
def register_methods(register):
    register(
        Method(
            name="{slug}",
            trainer=f"{__name__}.trainer:{name}Trainer",
            config=f"{__name__}.config:{name}Config",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="TODO: one line on what the method does.",
            example="trl-ext train {slug} --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--max_steps 50",
        )
    )


__all__ = ["PAPER", "{name}Config", "{name}Trainer"]
'''

CONFIG_TEMPLATE = '''\
"""{name}Config: SFTConfig plus the fields of TODO (the paper's title)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig


@dataclass
class {name}Config(FusedSFTConfig):
    r"""
    Configuration for [`{name}Trainer`], from "TODO: the paper's title" (https://arxiv.org/abs/TODO).

    TODO: the loss in a line or two with the paper's symbols, and where each default comes from (paper or code).
    """

    # SFTTrainer's loss_type must stay 'nll' (FusedSFTConfig refuses others): say what replaces it, and how to get the
    # variant a user may be after, e.g. "ASFT's own loss (pick the objective with asft_loss: ...)".
    own_loss: ClassVar[str] = "{name}'s own loss"

    # TODO: replace this example with the paper's fields; say in each help where its default comes from.
    example_weight: float = field(
        default=1.0,
        metadata={"help": "Example field: a factor on SFT's loss (1.0 is plain SFT). Replace with the paper's."},
    )

    def __post_init__(self) -> None:
        if not (self.example_weight > 0.0):  # also rejects NaN
            raise ValueError(f"example_weight={self.example_weight} must be a number > 0 (1.0 is plain SFT).")
        super().__post_init__()
'''

TRAINER_TEMPLATE = '''\
"""{name}Trainer: SFTTrainer with the loss of TODO (the paper's title), on trl_ext's fused-head SFT base."""

from __future__ import annotations

from trl_ext.losses.token_loss import fused_token_loss
from trl_ext.training.sft import FusedSFTTrainer

from .config import {name}Config
from .paper import PAPER


class {name}Trainer(FusedSFTTrainer):
    """TODO: the paper's title (arXiv TODO): one line on the method.

    The base does the rest: `args=None` gets {name}Config's defaults, the model card cites `paper`, metrics land in
    the current train/eval mode, and the loss runs inside the model's forward under DDP, DeepSpeed and FSDP."""

    config_class = {name}Config
    _name = "{name}"
    _tag_names = ["trl", "sft", "{slug}", "trl-ext"]
    paper = PAPER

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # TODO: the paper's loss, with its equation number and the paper's symbols as names. `scored.hidden` holds
        # the backbone's states at the scored positions; trl_ext.losses projects them through the head in chunks
        # (token weights, a KL to a reference, gold-token losses) without (batch, seq, vocab) logits.
        # `token_normalizer` (or `sequence_normalizer` with trl_ext.training.normalization.SequenceCountMixin)
        # keeps the loss the same under gradient accumulation and several processes.
        args: {name}Config = self.args
        scored = self.scored_batch(model, inputs)
        normalizer, multiplier = self.token_normalizer(scored.mask, num_items_in_batch)
        nll, stats = fused_token_loss(scored.hidden, self.policy_head, scored.targets, normalizer=normalizer)
        loss = args.example_weight * nll
        self.log_token_means(scored.mask, entropy=stats.entropy, mean_token_accuracy=stats.is_top1)
        return self.loss_output(model, scored, loss * multiplier, return_outputs)
'''

PAPER_TEMPLATE = '''\
"""The paper {slug} implements, apart from the config and trainer so that registering the plugin stays light."""

from trl_ext import Paper

# The trainer's `paper`: the model card's title, arXiv id and citation, and the method's record in the catalogue.
PAPER = Paper(
    title="TODO: the paper's title",
    arxiv=None,  # TODO: the arXiv id, e.g. "2509.23753"
    citation=None,  # TODO: the BibTeX entry
)
'''

README_HEAD = """\
# {slug}: TODO the paper's title

TODO: authors, year, [arXiv TODO](https://arxiv.org/abs/TODO), official code (if any).

## What it does

TODO: the idea in three sentences and the loss as an equation with the paper's symbols. What each config field
means (`trl-ext info {slug}` lists them with their help):

| field | default | from |
|-------|---------|------|
| `example_weight` | 1.0 | example field of the scaffold: replace it |

## Usage

```bash
trl-ext train {slug} --model_name_or_path smollm2-135m --dataset_name builtin:arith --max_steps 50
```

```python
from trl_ext import get
from trl_ext.data import load_dataset
from trl_ext.models import load_model, load_tokenizer

method = get("method", "{slug}")
trainer = method.trainer(
    model=load_model("smollm2-135m"),
    args=method.config(output_dir="out", example_weight=1.0, max_steps=50),
    train_dataset=load_dataset("builtin:arith")["train"],
    processing_class=load_tokenizer("smollm2-135m"),
)
trainer.train()
```

"""

README_BUILTIN_REGISTRATION = """\
### Registering the plugin

This folder is a built-in plugin of trl-ext, importable as `trl_ext_plugins.{slug}`. trl-ext discovers plugins, built-in
or not, through the entry-point group `trl_ext`: in trl-ext's `pyproject.toml`, add the entry point and the package,
then reinstall trl-ext (`pip install -e .`); `trl-ext plugins` shows it and any load error:

```toml
[project.entry-points.trl_ext]
{slug} = "trl_ext_plugins.{slug}"

[tool.setuptools]
packages = [..., "trl_ext_plugins.{slug}"]
```

Move `test_{slug}.py` to `tests/plugins/`, importing the plugin there as `trl_ext_plugins.{slug}` (see the comment in
the test). A plugin outside trl-ext is a distribution of its own: `trl-ext new-plugin {slug}` without `--builtin`.

"""

README_DISTRIBUTION_INSTALL = """\
### Installing it

This folder is the distribution `{dist}`: its `pyproject.toml` declares the entry point that makes it a trl-ext
plugin (`{slug} = "{slug}"` in the group `trl_ext`). From here:

```bash
pip install -e .                          # registers the plugin: `trl-ext plugins` shows it and any load error
trl-ext train {slug} --max_steps 5        # the built-in model and dataset, offline
pytest tests                              # the plugin's tests
```

"""

README_TAIL = """\
## Fidelity

TODO: what is exactly as published; what was adapted and why (where the paper's text and the official code
differ, the default follows the code and a config value gives the written version); which defaults are ours
because neither the paper nor the code gives them.

## Measured demo

TODO: a short run (command, model, data, steps) with its numbers against plain SFT, and
`trl-ext bench {slug}` (time per step and peak memory relative to its base's TRL trainer: SFTTrainer, GRPOTrainer,
...). For GRPO rewards: `trl-ext bench grpo --rewards NAME[,NAME] --only_rewards` (each reward's share of a step;
above 5% is a defect to fix).

## Citation

```bibtex
TODO: the paper's BibTeX (the same as PAPER.citation in paper.py)
```
"""

TEST_TEMPLATE = '''\
"""The {slug} plugin as generated by `trl-ext new-plugin`. Add the paper card's tests: hand-computed values,
limiting cases ("equals plain SFT when ..."), gradient checks."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.plugin.registry import Registry
from trl_ext.testing import tiny_model, tiny_tokenizer

# The plugin is imported as the top-level package `{slug}` from the folder above this file's folder, installed or not:
# the distribution's root (tests/test_{slug}.py), or plugins/ for a plugin folder with its test inside.
# Built into trl-ext (plugins/{slug}/, this file in tests/plugins/): `import trl_ext_plugins.{slug} as plugin`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
plugin = importlib.import_module("{slug}")


def row(question: str, answer: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": question}],
        "completion": [{"role": "assistant", "content": answer}],
    }


ROWS = [
    row("Tom has 3 apples and buys 4 more. How many?", "3 + 4 = 7. The answer is 7."),
    row("A box holds 12 pens. 5 are taken out. How many are left?", "12 - 5 = 7. The answer is 7."),
    row("Each of 6 bags has 8 marbles. How many marbles?", "6 * 8 = 48. The answer is 48."),
    row("Return JSON only: a name and an age.", '{"name": "Ann", "age": 31}'),
]
CPU = {"report_to": "none", "bf16": False, "use_cpu": True, "save_strategy": "no"}


def test_the_method_is_registered():
    registry = Registry()
    info = registry.add_plugin(plugin, "{slug}")
    assert info.status == "ok", info.error
    method = registry.get("method", "{slug}")
    assert method.plugin == "{slug}" and method.base == "sft"
    assert method.trainer is plugin.{name}Trainer and method.config is plugin.{name}Config


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_config_rejects_a_bad_value(tmp_path, bad):
    with pytest.raises(ValueError, match="example_weight"):
        plugin.{name}Config(output_dir=str(tmp_path), example_weight=bad, **CPU)


def test_config_refuses_another_loss_type(tmp_path):
    with pytest.raises(ValueError, match="loss_type='dft' conflicts with {name}'s own loss"):
        plugin.{name}Config(output_dir=str(tmp_path), loss_type="dft", **CPU)


def test_loss_is_example_weight_times_sft_loss(tmp_path):
    data = Dataset.from_list(ROWS)
    args = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, **CPU)
    sft = SFTTrainer(model=tiny_model(), args=SFTConfig(**args), train_dataset=data, processing_class=tiny_tokenizer())
    ours = plugin.{name}Trainer(
        model=tiny_model(),
        args=plugin.{name}Config(example_weight=2.0, **args),
        train_dataset=data,
        processing_class=tiny_tokenizer(),
    )
    batch = next(iter(sft.get_train_dataloader()))
    with torch.no_grad():
        sft_loss = sft.compute_loss(sft.model, dict(batch))
        loss = ours.compute_loss(ours.model, dict(batch))
    assert loss.item() == pytest.approx(2.0 * sft_loss.item(), rel=1e-5)


def test_one_training_step_changes_the_parameters(tmp_path):
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = plugin.{name}Config(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, learning_rate=1e-2, **CPU
    )
    trainer = plugin.{name}Trainer(
        model=model, args=args, train_dataset=Dataset.from_list(ROWS), processing_class=tiny_tokenizer()
    )
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert changed, "no parameter changed after one training step"
'''


PYPROJECT_TEMPLATE = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{slug}: TODO the paper's title, as a trl-ext method"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["trl-ext"]

[project.optional-dependencies]
test = ["pytest"]

# This table makes it a trl-ext plugin: trl-ext loads every entry point of the group `trl_ext`.
[project.entry-points.trl_ext]
{slug} = "{slug}"

[tool.setuptools]
packages = ["{slug}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

# The plugin's own modules, the same in both layouts.
MODULE_TEMPLATES = {
    "__init__.py": INIT_TEMPLATE,
    "paper.py": PAPER_TEMPLATE,
    "config.py": CONFIG_TEMPLATE,
    "trainer.py": TRAINER_TEMPLATE,
}


def class_name(slug: str) -> str:
    """The CamelCase prefix of a plugin's classes: `my_paper` -> `MyPaper`."""
    return "".join(part[:1].upper() + part[1:] for part in slug.split("_"))


def validate_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        raise ValueError(
            f"Plugin slug {slug!r} is not valid: use a lowercase Python identifier, [a-z][a-z0-9_]* "
            "(e.g. 'asft' or 'my_paper')."
        )
    if keyword.iskeyword(slug):
        raise ValueError(f"Plugin slug {slug!r} is a Python keyword; choose another name.")
    if slug in sys.stdlib_module_names or _importable(slug):
        raise ValueError(
            f"Plugin slug {slug!r} is the name of an installed module, which the plugin would shadow when "
            "imported as a top-level package; choose another name."
        )
    return slug


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _render(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(" + "|".join(values) + r")\}", lambda m: values[m.group(1)], template)


def distribution_name(slug: str) -> str:
    """The name of a plugin's own distribution: `my_loss` -> `trl-ext-my-loss`."""
    return "trl-ext-" + slug.replace("_", "-")


def create_plugin(slug: str, dest: str | Path = ".", *, kind: str = "method", builtin: bool = False) -> list[Path]:
    """Write a working plugin for a new paper into `dest/<slug>/` and return the files written.

    By default an installable distribution (pyproject with the `trl_ext` entry point, README, the package
    `<slug>/<slug>/`, `tests/`); `builtin=True` writes the plugin folder of trl-ext's own `plugins/<slug>/`. The
    package uses relative imports only, so it works as `trl_ext_plugins.<slug>`, inside any other package, or as a
    top-level package (as its generated test imports it). Refuses to touch an existing folder.
    """
    validate_slug(slug)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not supported; the scaffold writes: {', '.join(KINDS)}.")
    folder = Path(dest) / slug
    if folder.exists():
        raise FileExistsError(
            f"{folder} already exists; refusing to overwrite it. Remove it or choose another slug or destination."
        )
    values = {"slug": slug, "name": class_name(slug), "dist": distribution_name(slug)}
    if builtin:
        files = {
            **MODULE_TEMPLATES,
            "README.md": README_HEAD + README_BUILTIN_REGISTRATION + README_TAIL,
            f"test_{slug}.py": TEST_TEMPLATE,
        }
    else:
        files = {
            "pyproject.toml": PYPROJECT_TEMPLATE,
            "README.md": README_HEAD + README_DISTRIBUTION_INSTALL + README_TAIL,
            **{f"{slug}/{name}": template for name, template in MODULE_TEMPLATES.items()},
            f"tests/test_{slug}.py": TEST_TEMPLATE,
        }
    written = []
    for filename, template in files.items():
        path = folder / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render(template, values), encoding="utf-8")
        written.append(path)
    return written


def cmd_new_plugin(args: argparse.Namespace) -> int:
    dest = Path(args.dest if args.dest is not None else ("plugins" if args.builtin else "."))
    paths = create_plugin(args.slug, dest, builtin=args.builtin)
    for path in paths:
        print(f"created {path}")
    folder = dest / args.slug
    if args.builtin:
        print(
            f"\nNext: fill in the paper's loss in {folder / 'trainer.py'}, run `pytest {folder}`, and add the entry "
            f'point `{args.slug} = "trl_ext_plugins.{args.slug}"` to trl-ext\'s pyproject.toml ({folder / "README.md"}'
            " says where)."
        )
    else:
        # "./my_loss", not "my_loss": pip reads a bare name as a package to download
        where = folder if folder.is_absolute() or folder.parts[0] == ".." else f".{os.sep}{folder}"
        print(
            f"\nNext: `pip install -e {where}`, then `trl-ext train {args.slug} --max_steps 5` runs its loss on the "
            f"built-in model and dataset. Fill in the paper's loss in {folder / args.slug / 'trainer.py'} and run "
            f"`pytest {folder}`."
        )
    return 0
