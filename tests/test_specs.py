"""Component specs on the command line: NAME:key=value..., comma-separated lists, quoted and bracketed values."""

import pytest

from trl_ext.run.specs import SpecError, parse_spec, parse_spec_list


def test_plain_specs_and_typed_values():
    assert parse_spec("grape:top_k=2:batch_size=4") == ("grape", {"top_k": 2, "batch_size": 4})
    assert parse_spec({"name": "grape", "top_k": 2}) == ("grape", {"top_k": 2})
    assert parse_spec_list("a, b:x=true") == [("a", {}), ("b", {"x": True})]


def test_quoted_and_bracketed_values_keep_their_separators():
    assert parse_spec("judge:url='http://host:8000/v1':n=2") == ("judge", {"url": "http://host:8000/v1", "n": 2})
    assert parse_spec('t:path="C:\\\\data\\\\x.jsonl"') == ("t", {"path": "C:\\data\\x.jsonl"})
    assert parse_spec_list("mix:weights=[0.25,0.75],grape:top_k=1") == [
        ("mix", {"weights": [0.25, 0.75]}),
        ("grape", {"top_k": 1}),
    ]
    assert parse_spec_list("r:labels='a,b',s") == [("r", {"labels": "a,b"}), ("s", {})]


def test_malformed_specs_say_how_to_write_them():
    with pytest.raises(SpecError, match="quote a value"):
        parse_spec("judge:url=http://host:8000")  # the unquoted colon leaves "//host" without a key
    with pytest.raises(SpecError, match="Unclosed quote"):
        parse_spec("a:b='x")
    with pytest.raises(SpecError, match="needs a 'name'"):
        parse_spec({"top_k": 2})


@pytest.mark.parametrize(
    "options",
    [
        {"judge": "pkg.mod:fn"},  # a YAML `eval: {name: judge, judge: pkg.mod:fn}` became `judge:judge=pkg.mod:fn`
        {"k": 4, "figure": "eval/acc"},
        {"options": [" positive", " negative"]},
        {"labels": "a,b", "quoted": "it's:x", "text": 'say "hi"'},
        {"as_text": "true", "number_text": "3", "empty": "", "none_text": "null"},  # text that YAML would retype
        {"flag": True, "rate": 3.5, "mapping": {"x": 1}},
    ],
)
def test_format_spec_is_read_back_by_parse_spec(options):
    from trl_ext.run.specs import format_spec

    assert parse_spec(format_spec("n", options)) == ("n", options)


def test_a_compare_metric_mapping_keeps_a_value_holding_a_colon():
    from trl_ext.cli.compare import _metric_spec
    from trl_ext.compare.metrics import parse_metric

    spec = parse_metric(_metric_spec({"name": "judge", "judge": "trl_ext_plugins.stat.build:default_judge"}))
    assert (spec.name, spec.options) == ("judge", {"judge": "trl_ext_plugins.stat.build:default_judge"})
