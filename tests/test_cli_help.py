"""Every `trl-ext` command prints its help and exits 0 (argparse formats help strings with %, so a bare `95%` in
one crashed `trl-ext compare --help` with a TypeError)."""

import pytest

from trl_ext.cli import PASSTHROUGH, main, make_parser


def _commands() -> list[str]:
    sub = next(a for a in make_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_command_is_listed():
    assert set(PASSTHROUGH) <= set(_commands())
    assert {"list", "info", "compare", "train", "transform", "bench", "evaluate", "generate"} <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_help_prints_and_exits_zero(command, capsys):
    assert main([command, "--help"]) == 0
    printed = capsys.readouterr().out
    assert "usage" in printed.lower() and "--" in printed


def _registered(kind: str) -> list[str]:
    from trl_ext.plugin.registry import registry

    return sorted(r.name for r in registry().components(kind))


@pytest.mark.parametrize(
    "argv",
    [["train", name] for name in _registered("method")] + [["transform", name] for name in _registered("transform")],
    ids=" ".join,
)
def test_each_method_and_transform_help(argv, capsys):
    """A config field's help such as "(paper: 50/70/100%)" is text, not a format: help prints with it as written."""
    assert main([*argv, "--help"]) == 0
    printed = capsys.readouterr().out
    assert "usage" in printed.lower()


def test_percent_in_a_field_help_prints_as_written(capsys):
    assert main(["train", "qtuning", "--help"]) == 0
    assert "50/70/100%;" in " ".join(capsys.readouterr().out.split())
