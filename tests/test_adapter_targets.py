"""trl_ext.adapters.targets: module selection as peft's own tuners select (regex on the whole path, or names)."""

from trl_ext.adapters.targets import matches_target


def test_names_match_the_path_or_its_last_dotted_parts():
    key = "model.layers.0.self_attn.q_proj"
    assert matches_target(["q_proj"], key) and matches_target(["self_attn.q_proj"], key) and matches_target([key], key)
    assert not matches_target(["proj"], key)  # a suffix of the name, not a dotted part
    assert not matches_target(None, key) and not matches_target([], key)


def test_a_string_is_a_regex_over_the_whole_path():
    assert matches_target(r".*\.(q|v)_proj", "model.layers.3.self_attn.v_proj")
    assert not matches_target(r"(q|v)_proj", "model.layers.3.self_attn.v_proj")  # fullmatch, not search
