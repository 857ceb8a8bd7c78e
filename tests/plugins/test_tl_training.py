"""TL-Training: the card's tests (shared/papers/tl-training.md, tests 1-5), PKT against a naive full-logits version of
the official GCELoss, normalisation under gradient accumulation and 2 processes, the built-in data and the CLI."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext import get
from trl_ext.cli import main
from trl_ext.testing import (
    check_same_step_in_every_layout,
    max_grad_diff,
    one_step_config,
    relative_grad_diff,
    tiny_grpo_flags,
    tiny_model,
    tiny_run_flags,
    tiny_tokenizer,
    train_argv,
    trainer_loss_and_grads,
)
from trl_ext.training.token_masks import completion_token_masks, render_prompt_completion
from trl_ext_plugins.tl_training import (
    REWARDS,
    PKTConfig,
    PKTTrainer,
    ToolCallReward,
    build_tool_calls,
    call_accuracy,
    pkt_spans,
    pkt_weights,
    score_call,
    tl_mae_split,
    tool_call_reward,
)

TOOLS = json.dumps(
    [
        {"type": "function", "function": {"name": n, "parameters": {"properties": {"city": {}}}}}
        for n in ("get_weather", "get_wind", "search")
    ]
)


def _rows():
    targets = [
        "get_weather(city='Oslo')",
        "search(query='a long query about many things', limit='3')",
        "get_wind(city='Lima')",
        "It is sunny today in Paris, with a light wind from the west.",
        "get_weather(city='Quito', unit='celsius')",
        "search(query='x')",
        "get_wind()",
        "The answer is 42.",
    ]
    return [
        {
            "prompt": [{"role": "user", "content": f"Request {i}"}],
            "completion": [{"role": "assistant", "content": t}],
            "tools": TOOLS,
        }
        for i, t in enumerate(targets)
    ]


def _config(tmp_path, cls=PKTConfig, **kw):
    return one_step_config(cls, tmp_path, **{"per_device_train_batch_size": 8, "learning_rate": 1e-3, **kw})


def _loss_and_grads(trainer_cls, config, rows, model=None):
    return trainer_loss_and_grads(trainer_cls, config, rows, model, count_items=False)


# --- card test 1: MAE -----------------------------------------------------------------------------------------------
def _trajectory(second_output="ok: 12 results"):
    return {
        "id": "t1",
        "messages": [
            {"role": "system", "content": "tools"},
            {"role": "user", "content": "Plan my day"},
            {"role": "assistant", "content": "get_weather(city='Oslo')"},
            {"role": "function", "content": "sunny"},
            {"role": "assistant", "content": "search(query='museums')"},
            {"role": "function", "content": second_output},
            {"role": "assistant", "content": "Visit the museum; it is sunny."},
        ],
    }


def test_mae_drops_the_failed_turn():
    samples = tl_mae_split(_trajectory("Traceback: ConnectionError: host unreachable"))
    assert [s["turn"] for s in samples] == [1, 3]
    assert [s["completion"][0]["content"] for s in samples] == [
        "get_weather(city='Oslo')",
        "Visit the museum; it is sunny.",
    ]
    assert len(samples[1]["prompt"]) == 6 and samples[1]["id"] == "t1"  # the failed call stays in the context
    assert len(tl_mae_split(_trajectory("Traceback: ConnectionError"), drop_errors=False)) == 3
    assert len(tl_mae_split(_trajectory())) == 3


def test_mae_matching_and_skips():
    # matched on lower-cased letters and digits only: "connection-error" and "Error" (from "'error'") both hit
    assert len(tl_mae_split(_trajectory("Connection-Error!"))) == 2
    assert len(tl_mae_split(_trajectory("an ERROR occurred"))) == 2
    assert len(tl_mae_split(_trajectory("fine"), error_markers=["fine"])) == 2
    # an assistant turn followed by a user message (not a tool output) is not a sample
    convo = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "f(x='1')"},
        ]
    }
    assert [s["turn"] for s in tl_mae_split(convo)] == [2]
    # structured calls are rendered in the official format (JSON-dumped values)
    structured = {
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "search", "arguments": '{"query": "x", "limit": 3}'}}],
            },
        ]
    }
    assert tl_mae_split(structured)[0]["completion"][0]["content"] == 'search(query="x", limit=3)'


def test_mae_transform_on_a_dataset():
    dataset = Dataset.from_list([_trajectory("ConnectionError"), _trajectory()])
    split = get("transform", "tl_mae_split").build()(dataset)
    assert len(split) == 5 and {"prompt", "completion", "turn", "id"} <= set(split.column_names)
    assert "messages" not in split.column_names
    assert len(get("transform", "tl_mae_split").build(drop_errors=False)(dataset)) == 6


# --- card test 2 and 3: PKT weights ---------------------------------------------------------------------------------
def _masks(n_pre, n_para, n_other):
    n = n_pre + n_para + n_other
    pre = torch.zeros(1, n)
    para = torch.zeros(1, n)
    pre[0, :n_pre] = 1
    para[0, n_pre : n_pre + n_para] = 1
    return pre, para, torch.ones(1, n, dtype=torch.bool)


@pytest.mark.parametrize("n_pre,n_other,expected", [(2, 30, 9.0), (2, 10, 5.0), (5, 3, 1.0), (3, 3, 1.0)])
def test_pkt_weight_hand_cases(n_pre, n_other, expected):
    c, d, w = pkt_weights(*_masks(n_pre, 1, n_other), max_weight=9.0)
    assert w.item() == pytest.approx(expected)
    assert (c.sum() / d.sum()).item() == pytest.approx(1.0)  # all e_j = 1 -> loss 1
    assert d.sum().item() == pytest.approx(expected * n_pre + 1 + n_other)


def test_pkt_official_quirks():
    # f(): P = {f}, Q = {()}, O = {end}: |O| excludes Q, so w_P = 1, not 2
    _, _, w = pkt_weights(torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 1.0, 0]]), torch.ones(1, 3, dtype=bool), 9.0)
    assert w.item() == 1.0
    # a token in both P and Q counts twice in the numerator, once (as w_P) in the denominator
    pre, para, mask = torch.tensor([[1.0, 0, 0, 0, 0]]), torch.tensor([[1.0, 0, 0, 0, 0]]), torch.ones(1, 5).bool()
    c, d, w = pkt_weights(pre, para, mask, 9.0)
    assert w.item() == 4.0 and c[0, 0].item() == 5.0 and d[0, 0].item() == 4.0


def test_max_weight_one_reproduces_sft(tmp_path):
    rows = _rows()
    sft_loss, sft_grads, *_ = _loss_and_grads(SFTTrainer, _config(tmp_path, SFTConfig), rows)
    loss, grads, _, batch = _loss_and_grads(PKTTrainer, _config(tmp_path, pkt_max_weight=1.0), rows)
    assert batch["pkt_pre_mask"].sum() > 0
    assert not (batch["pkt_pre_mask"].bool() & batch["pkt_para_mask"].bool()).any()  # no P∩Q double count here
    assert loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, grads) < 1e-5


def _naive_pkt(model, batch, max_weight, per_sample=False):
    """The official GCELoss, per sequence with Python sets, on full logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    ce = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    nums, dens = [], []
    for row in range(labels.shape[0]):
        valid = [t for t in range(labels.shape[1]) if labels[row, t] != -100]
        pre = [t for t in valid if batch["pkt_pre_mask"][row, t + 1]]
        para = [t for t in valid if batch["pkt_para_mask"][row, t + 1]]
        other = [t for t in valid if t not in pre and t not in para]
        w = min(len(other) / len(pre), max_weight) if pre and len(pre) < len(other) else 1.0
        nums.append(w * sum(ce[row, t] for t in pre) + sum(ce[row, t] for t in para) + sum(ce[row, t] for t in other))
        dens.append(w * len(pre) + (len(valid) - len(pre)))
    if per_sample:
        return sum(n / d for n, d in zip(nums, dens, strict=True)) / len(nums)
    return sum(nums) / sum(dens)


@pytest.mark.parametrize("normalization", ["global", "per_sample"])
def test_loss_and_grads_match_naive_official_loss(tmp_path, normalization):
    loss, grads, _, batch = _loss_and_grads(PKTTrainer, _config(tmp_path, pkt_normalization=normalization), _rows())
    model = tiny_model()
    expected = _naive_pkt(model, batch, 9.0, per_sample=normalization == "per_sample")
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert max_grad_diff({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, grads) < 1e-5


# --- card test 4: pre tokens by offsets -----------------------------------------------------------------------------
def _marked_chars(tokenizer, target, names):
    """(P, Q) as character ranges of the marked tokens, relative to the target."""
    example = {
        "prompt": [{"role": "user", "content": "weather?"}],
        "completion": [{"role": "assistant", "content": target}],
    }
    masks = completion_token_masks(tokenizer, example, pkt_spans(target, names))
    rendered = render_prompt_completion(tokenizer, example)
    start = rendered.completion_start

    def chars(key):
        return [(s - start, e - start) for (s, e), m in zip(rendered.offsets, masks[key], strict=True) if m]

    return chars("pkt_pre_mask"), chars("pkt_para_mask")


def _check_pre_tokens(tokenizer):
    target = "get_weather(city='Oslo', unit='celsius')"
    pre, para = _marked_chars(tokenizer, target, ["get_weather", "get_wind"])
    assert len(pre) == 2
    assert pre[0][0] <= 0 < pre[0][1]  # the token holding the name's first character
    assert pre[1][0] <= 5 < pre[1][1]  # the first token after the shared prefix "get_w"
    marked = "".join(target[max(s, 0) : e] for s, e in para)
    assert marked.count("'") >= 2 and "," in marked and ")" in marked  # the terminators ', and ')
    assert all(target[max(s, 0) : e].strip() in {"',", "')", "'", ",", ")", ""} for s, e in para)


def test_pre_and_para_tokens_by_offsets_tiny_tokenizer():
    _check_pre_tokens(tiny_tokenizer())
    assert pkt_spans("get_weather(city='x')", ["get_weather", "get_wind"])["pkt_pre_mask"] == [(0, 1), (5, 6)]
    assert pkt_spans("get_w(city='x')", ["get_weather"])["pkt_pre_mask"] == [(0, 1), (5, 6)]  # "(" after a prefix
    assert pkt_spans("The answer is 4.", ["get_weather"]) == {"pkt_pre_mask": [], "pkt_para_mask": []}
    assert pkt_spans("f(x=1)", [], terminators=["',"])["pkt_para_mask"] == [(5, 6)]  # fallback: last token


@pytest.mark.slow
def test_pre_and_para_tokens_by_offsets_smollm2_tokenizer():
    from trl_ext.models import load_tokenizer

    _check_pre_tokens(load_tokenizer("smollm2-135m"))


# --- card test 5: the reward table ----------------------------------------------------------------------------------
SEARCH_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {"properties": {"query": {"type": "string"}, "limit": {"type": "string"}}},
        },
    }
]


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("search(query='love')", 1.0),
        ("search(query='hate')", -0.25),
        ("search(limit='3')", -1.0),
        ("search(foo='x')", -1.3),
        ("search(query='love', foo='x')", -0.8),
        ("search(query='love', limit='3')", -0.5),
        ("search(foo='x', limit='3')", -1.8),
        ("find(query='love')", -2.0),
        ("hello", -2.0),
        ("(query='love')", -1.5),
    ],
)
def test_reward_table(completion, expected):
    reward = tool_call_reward(
        None,
        [[{"role": "assistant", "content": completion}]],
        tools=[SEARCH_TOOLS],
        gold_call=["search(query='love')"],
    )
    assert reward == [expected]


def test_reward_official_quirks_and_strict_parsing():
    params = {"search": ["query", "limit"]}
    # demo action that is not a tool: hallucination/redundancy checks are off, a wrong arg scores -0.25
    assert score_call(
        "search(query='love', foo='x')", "search(query='love')", ["search"], params, demo_action="Thought: search"
    ) == (-0.25, "wrong_value")
    # double quotes are invisible to the official parser, parsed in strict mode
    assert score_call('search(query="hate")', "search(query='love')", ["search"], params)[0] == -0.5
    assert (
        score_call('search(query="hate")', "search(query='love')", ["search"], params, strict_parsing=True)[0] == -0.25
    )
    assert score_call('search(query="love")', "search(query='love')", ["search"], params, strict_parsing=True)[0] == 1
    assert score_call("search(query='f(x)')", "search(query='f(x)')", ["search"], params, strict_parsing=True)[0] == 1


def test_reward_logs_category_fractions():
    logged = {}
    ToolCallReward()(
        None,
        ["search(query='love')", "hello"],
        tools=[SEARCH_TOOLS] * 2,
        gold_call=["search(query='love')"] * 2,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert logged["irm/frac_exact"] == 0.5 and logged["irm/frac_parse_failure"] == 0.5
    assert set(logged) == {f"irm/frac_{c}" for c in REWARDS} | {"irm/gold_error_rate"}
    assert logged["irm/gold_error_rate"] == 0.0


@pytest.mark.parametrize("strict", [False, True])
def test_a_row_whose_gold_call_or_tools_are_unusable_is_not_applicable(strict):
    """A gold call that does not parse (None, no call, a list) or tools that do not load (bad JSON, a list of
    numbers) make the row not applicable (None), whatever the completion; it scored -2.0 (parse_failure), the value of a
    garbage completion, or raised into the toolkit's 0.0. A good row in the same batch keeps its score."""
    logged = {}
    good = "search(query='love')"
    golds = [good, None, "no call here", ["search(query='love')"], good, good]
    tools = [SEARCH_TOOLS] * 4 + ["{not json", [1, 2]]
    rewards = ToolCallReward(strict_parsing=strict)(
        None, [good] * 6, tools=tools, gold_call=golds, log_metric=lambda k, v: logged.__setitem__(k, v)
    )
    assert rewards == [1.0, None, None, None, None, None]
    assert logged["irm/gold_error_rate"] == 5 / 6 and logged["irm/frac_exact"] == 1 / 6


# --- normalisation under gradient accumulation and 2 processes ------------------------------------------------------
@pytest.mark.parametrize("normalization", ["global", pytest.param("per_sample", marks=pytest.mark.slow)])
def test_gradient_accumulation_matches_one_batch(tmp_path, normalization):
    def update(per_device, accumulation):
        model = tiny_model()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = _config(
            tmp_path / f"{per_device}x{accumulation}",
            per_device_train_batch_size=per_device,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=1.0,
            warmup_steps=0,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            weight_decay=0.0,
            pkt_normalization=normalization,
        )
        trainer = PKTTrainer(
            model=model, args=cfg, train_dataset=Dataset.from_list(_rows()[:4]), processing_class=tiny_tokenizer()
        )
        trainer.train()
        return {n: before[n] - p.detach() for n, p in trainer.model.named_parameters()}

    single, accumulated = update(4, 1), update(2, 2)
    assert max(v.abs().max().item() for v in single.values()) > 1e-4
    assert relative_grad_diff(single, accumulated) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["global", "per_sample"])
def test_same_gradient_on_one_and_two_processes(tmp_path, normalization):
    check_same_step_in_every_layout(
        Path(__file__).parents[1] / "distributed" / "tl_training_ddp.py", tmp_path, normalization
    )


# --- trainer plumbing, config, data, CLI ----------------------------------------------------------------------------
def test_metrics_logged(tmp_path):
    trainer = PKTTrainer(
        model=tiny_model(),
        args=_config(tmp_path, max_steps=1),
        train_dataset=Dataset.from_list(_rows()),
        processing_class=tiny_tokenizer(),
    )
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"pkt/w_pre", "pkt/ce_pre", "pkt/ce_para", "pkt/frac_pre", "loss", "entropy"} <= logged
    assert all(1.0 <= e["pkt/w_pre"] <= 9.0 for e in trainer.state.log_history if "pkt/w_pre" in e)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("pkt_max_weight", 0.0, "pkt_max_weight"),
        ("pkt_call_regex", r"(\w+)\(", "pkt_call_regex"),
        ("pkt_call_regex", "([", "pkt_call_regex"),
        ("pkt_terminators", ["", ")"], "pkt_terminators"),
        ("pkt_normalization", "mean", "pkt_normalization"),
        ("remove_unused_columns", True, "remove_unused"),
        ("padding_free", True, "padding_free"),
    ],
)
def test_config_validation(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **{field: value})


def test_builtin_tool_calls():
    conversations = build_tool_calls("conversations")["train"]
    sft = build_tool_calls("sft")["train"]
    grpo = build_tool_calls("grpo")["test"]
    assert len(conversations) == 300 and len(grpo) == 100
    corrupted = [r for r in conversations if r["corrupted"]]
    assert 10 <= len(corrupted) <= 60
    wrong_calls = {r["messages"][2]["content"] for r in corrupted}
    assert not wrong_calls & {r["completion"][0]["content"] for r in sft}  # MAE dropped every failed call
    assert len(sft) == 2 * 300  # the gold call (a retry after a failure) and the final answer
    assert sft["turn"].count(1) == 300 - len(corrupted)  # the first turn survives only where it did not fail
    assert set(grpo.column_names) == {"prompt", "tools", "gold_call"} and grpo[0]["prompt"][-1]["role"] == "user"
    assert call_accuracy(grpo["gold_call"][:5], grpo["gold_call"][:5]) == {
        "tool_name_accuracy": 1.0,
        "exact_call_accuracy": 1.0,
    }


def test_cli_mae_then_pkt_on_builtin_conversations(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    code = main(
        train_argv(
            "pkt",
            tiny_model_dir,
            str(out),
            "--dataset_config",
            "conversations",
            "--transforms",
            "tl_mae_split",
            *tiny_run_flags(),
            "--max_length",
            "512",
        )
    )
    assert code == 0 and (out / "model.safetensors").exists()


def test_cli_refuses_dataset_without_tools(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(train_argv("pkt", tiny_model_dir, str(out), "--dataset_name", "builtin:arith", "--max_steps", "1"))
    err = capsys.readouterr().err
    assert code == 2 and "'tools'" in err and "pkt" in err and not out.exists()


def test_cli_grpo_with_tool_call_reward(tiny_model_dir, tmp_path):
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "grpo"),
            "--dataset_name",
            "builtin:tool_calls",
            "--rewards",
            "tool_call_reward:strict_parsing=true",
            *tiny_grpo_flags(),
            "--beta",
            "0.3",
        )
    )
    assert code == 0


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("Sure!\nsearch(query='love') and more)", 1.0),  # the call's line up to "(" is the name
        ("I will search(query='love')", -2.0),  # "I will search" is not a tool
        ("search(query='love'", -2.0),  # no ")" at all: parse failure
        ("search(xquery='a', query='love')", -0.8),  # "xquery" is not a parameter (hallucinated)
    ],
)
def test_official_parse_keeps_the_regex_first_match(completion, expected):
    assert tool_call_reward(None, [completion], tools=[SEARCH_TOOLS], gold_call=["search(query='love')"]) == [expected]


def test_degenerate_calls_fail_to_parse_at_once():
    # The official regex backtracks cubically on many "(" without ")" (1,000 characters took 30 s) and its argument
    # pattern quadratically over a long word; these inputs would run for hours before the linear parse.
    gold, names, params = "search(query='love')", ["search"], {"search": ["query"]}
    assert score_call("f(" * 200_000, gold, names, params) == (-2.0, "parse_failure")
    assert score_call("search(" + "a" * 200_000 + ")", gold, names, params) == (-0.5, "redundant_or_missing")
    assert get("reward", "tool_call_reward").build(strict_parsing=True).__name__ == "tool_call_reward_strict_parsing"


def test_strict_parsing_finds_what_its_regexes_found_in_linear_time():
    import random
    import re

    from trl_ext_plugins.tl_training import irm

    # The regexes strict parsing used before (quadratic over a long word run) are the reference.
    name_regex = re.compile(r"([A-Za-z_][\w.]*)?\s*\(")
    any_quote_regex = re.compile(r"""(\w+)\s*=\s*(?:'([^']*)'|"((?:[^"\\]|\\.)*)"|([^,\s)]+))""")
    rng = random.Random(0)
    alphabet = "ab_.1 (\t\né)=x'\",\\9Z\u00a0"
    texts = ["search(", "  x.y  (", "1abc(", "é_a(", "a b(", "(", ")x(", "a=b c='d' e=\"f\" g=1)"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(20_000)]
    for text in texts:
        match = name_regex.search(text)
        if match:
            assert irm._name_before(text, text.find("(")) == (match.group(1) or ""), text
        expected = [m.groups() for m in any_quote_regex.finditer(text)]
        assert [m.groups() for m in irm._ANY_QUOTE_ARG.finditer(text)] == expected, text
    # A 1 MB word before "(" took minutes; nesting past Python's parser is a parse failure, not an exception.
    gold, names, params = "search(query='love')", ["search"], {"search": ["query"]}
    assert score_call("a" * (1 << 20) + " " + gold, gold, names, params, strict_parsing=True) == (1.0, "exact")
    assert score_call(gold, "a" * (1 << 20), names, params, strict_parsing=True) == (-2.0, "parse_failure")
    deep = "search(query=" + "-" * 100_000 + "1)"
    assert score_call(deep, gold, names, params, strict_parsing=True) == (-2.0, "parse_failure")


def test_the_per_answer_call_judges_read_the_first_line_and_agree_with_call_accuracy():
    """Hand cases against the gold get_weather(city='Cairo', unit='celsius'): the exact call (either quote style), a
    wrong argument (name right), another tool, garbage; compare's judges read the answer's first line only."""
    from trl_ext_plugins.tl_training import call_verdict, first_call_exact_judge, first_call_name_judge

    gold = "get_weather(city='Cairo', unit='celsius')"
    cases = {
        'get_weather(city="Cairo", unit="celsius")': (True, True),
        "get_weather(city='Cairo', unit='fahrenheit')": (True, False),
        "search_news(topic='Cairo')": (False, False),
        "The weather is nice.": (False, False),
    }
    for text, expected in cases.items():
        assert call_verdict(text, gold) == expected, text
    assert first_call_exact_judge(None, f"  {gold}\nThe call above.", gold)
    assert not first_call_name_judge(None, f"Let me check.\n{gold}", gold)  # the call is not on the first line
    texts = list(cases)
    assert (
        call_accuracy(texts, [gold] * 4)
        == {
            "tool_name_accuracy": sum(first_call_name_judge(None, t, gold) for t in texts) / 4,
            "exact_call_accuracy": sum(first_call_exact_judge(None, t, gold) for t in texts) / 4,
        }
        == {"tool_name_accuracy": 0.5, "exact_call_accuracy": 0.25}
    )
