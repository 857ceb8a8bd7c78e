"""pika: every hand-computed case of the card (selection, margins, keep-hardest, dedup, loader, deterministic
pipeline), the transform on the curation runner (rewards column and model scoring), and the real CLI
(`trl-ext transform pika`, `trl-ext train sft --transforms pika`)."""

import json

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext_plugins.pika import (
    PikaFormatError,
    decide,
    duplicate_of,
    hardest,
    load_pika,
    make_pika_transform,
    normalize_instruction,
    pika_build,
    select_responses,
)

CARD_REWARDS = [0.1, 0.9, 0.5, 0.3]


# --- card test 1: rewards [0.1, 0.9, 0.5, 0.3] -> SFT index 1, pair (chosen 1, rejected 0), margin 0.8
def test_card_selection():
    sel = select_responses(CARD_REWARDS)
    assert sel.best == 1 and sel.worst == 0
    assert sel.margin == pytest.approx(0.9 - 0.1)
    assert sel.mean_reward == pytest.approx((0.1 + 0.9 + 0.5 + 0.3) / 4)
    assert sel.difficulty == pytest.approx(-0.45)


def test_card_selection_through_the_transform():
    row = {"prompt": "Q", "responses": ["r0", "r1", "r2", "r3"], "rewards": CARD_REWARDS}
    sft = make_pika_transform(rewards_column="rewards", conversational=False)(Dataset.from_list([row]))
    assert sft.to_list() == [{"prompt": "Q", "completion": "r1"}]
    dpo = make_pika_transform(rewards_column="rewards", form="dpo", conversational=False)(Dataset.from_list([row]))
    assert dpo.to_list() == [{"prompt": "Q", "chosen": "r1", "rejected": "r0"}]


# --- card test 2: min_margin 1.0 drops the pair; min_best_score 0.95 drops the instruction
def test_card_min_margin_and_min_best_score():
    assert decide(["Q"], [CARD_REWARDS], preferences=True) == [(True, "kept")]
    [(kept, reason)] = decide(["Q"], [CARD_REWARDS], preferences=True, min_margin=1.0)
    assert not kept and reason.startswith("margin 0.8 <")
    assert decide(["Q"], [CARD_REWARDS], min_margin=1.0) == [(True, "kept")], "the margin only gates pairs"
    for preferences in (False, True):
        [(kept, reason)] = decide(["Q"], [CARD_REWARDS], preferences=preferences, min_best_score=0.95)
        assert not kept and reason.startswith("best reward 0.9 <")
    assert decide(["Q"], [CARD_REWARDS], min_best_score=0.9) == [(True, "kept")], "the bound is inclusive"


# --- card test 3: keep_hardest, n_keep 2, mean rewards [0.2, 0.8, 0.5] -> instructions 0 and 2
def test_card_keep_hardest():
    assert hardest([0.2, 0.8, 0.5], 2) == [0, 2]
    verdicts = decide(["a", "b", "c"], [[0.2], [0.8], [0.5]], n_keep=2)
    assert [k for k, _ in verdicts] == [True, False, True]
    assert [k for k, _ in decide(["a", "b", "c"], [[0.2], [0.8], [0.5]], n_keep=2, keep_hardest=False)] == [
        True,
        True,
        False,
    ]
    assert hardest([0.5, 0.5, 0.5], 2) == [0, 1], "ties keep the earlier instruction"


# --- card test 4: "What is X?" and "what is x" are duplicates
def test_card_dedup():
    assert normalize_instruction("What is X?") == normalize_instruction("what is x") == "what is x"
    assert duplicate_of(["What is X?", "what is x", "What is Y?"]) == [None, 0, None]
    verdicts = decide(["What is X?", "what is x"], [[0.1], [0.1]])
    assert verdicts == [(True, "kept"), (False, "duplicate of row 0")]


# --- card test 5: loader, both shapes, roles user/assistant, a clear error for a missing field
def test_card_loader(tmp_path):
    rows = [
        {"conversations": [{"from": "human", "value": "Explain X."}, {"from": "gpt", "value": "X is ..."}]},
        {"instruction": "Explain Y.", "output": "Y is ..."},
    ]
    path = tmp_path / "pika.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sft = load_pika(path)
    assert sft["messages"] == [
        [{"role": "user", "content": "Explain X."}, {"role": "assistant", "content": "X is ..."}],
        [{"role": "user", "content": "Explain Y."}, {"role": "assistant", "content": "Y is ..."}],
    ]
    (tmp_path / "pika.json").write_text(json.dumps(rows))
    assert load_pika(tmp_path / "pika.json")["messages"] == sft["messages"]
    Dataset.from_list([{"instruction": "Explain Y.", "output": "Y is ..."}]).to_parquet(str(tmp_path / "p.parquet"))
    assert load_pika(tmp_path / "p.parquet")["messages"] == sft["messages"][1:]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "Explain Z."}) + "\n")
    with pytest.raises(PikaFormatError, match="'output'"):
        load_pika(bad)
    bad.write_text(json.dumps({"text": "?"}) + "\n")
    with pytest.raises(PikaFormatError, match="conversations"):
        load_pika(bad)
    bad.write_text(json.dumps({"conversations": [{"from": "human"}]}) + "\n")
    with pytest.raises(PikaFormatError, match="'value'"):
        load_pika(bad)

    pref = tmp_path / "dpo.jsonl"
    pref.write_text(json.dumps({"instruction": "Q", "chosen": "good", "rejected": "bad"}) + "\n")
    assert load_pika(pref, split="dpo").to_list() == [
        {
            "prompt": [{"role": "user", "content": "Q"}],
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
        }
    ]
    pref.write_text(json.dumps({"instruction": "Q", "chosen": "good"}) + "\n")
    with pytest.raises(PikaFormatError, match="rejected"):
        load_pika(pref, split="dpo")


# --- card test 6: mocked LLM and RM -> deterministic for a fixed seed
PERSONAS = [
    {"persona": "a biologist", "domain": "bio"},
    {"persona": "A biologist.", "domain": "bio"},  # near-duplicate persona: dropped
    {"persona": "a lawyer", "domain": "law"},
    {"persona": "a chemist", "domain": "chem"},
    {"persona": "a judge", "domain": "law"},
]


def _instruct(prompt: str) -> str:
    who = prompt.split("You are ")[1].split(".")[0]
    return f"What would {who} ask?" if who != "a judge" else "What would a lawyer ask"  # duplicate instruction


def _respond(instruction: str, n: int) -> list[str]:
    return [f"{instruction} answer {'!' * j}" for j in range(n)]


def _reward(instruction: str, response: str) -> float:
    return (response.count("!") * 0.25 + len(instruction) % 3 * 0.1) % 1.0


def test_card_pipeline_deterministic_with_mocks():
    calls: list[str] = []

    def respond(instruction, n):
        calls.append(instruction)
        return _respond(instruction, n)

    logged: list[dict] = []
    sft1, pref1 = pika_build(PERSONAS, _instruct, respond, _reward, n_candidates=3, seed=3, log=logged.append)
    sft2, pref2 = pika_build(PERSONAS, _instruct, _respond, _reward, n_candidates=3, seed=3)
    assert sft1.to_list() == sft2.to_list() and pref1.to_list() == pref2.to_list()
    # 4 unique personas -> 4 instructions, one of which repeats "What would a lawyer ask?" -> 3 kept.
    assert len(calls) == 3 and len(sft1) == 3
    prompts = sorted(normalize_instruction(r["prompt"][0]["content"]) for r in sft1)
    assert prompts == ["what would a biologist ask", "what would a chemist ask", "what would a lawyer ask"]
    # Rewards of candidates j = 0, 1, 2 rise with j (0.25 per "!"): best = 2, worst = 0, margin 0.5.
    for row in sft1:
        assert row["completion"][0]["content"].endswith("answer !!")
        assert "persona" not in row and "You are" not in row["prompt"][0]["content"], "no persona leakage"
    assert all(r["margin"] == pytest.approx(0.5) for r in pref1)
    assert logged[0]["pika/n_personas"] == 4 and logged[0]["pika/n_instructions"] == 3 and logged[0]["pika/kept"] == 3
    assert logged[0]["pika/domain_frac/bio"] == pytest.approx(1 / 3)
    # The cache: a second build with the same cache makes no LLM call.
    cache: dict = {}
    pika_build(PERSONAS, _instruct, respond, _reward, n_candidates=3, seed=3, cache=cache)
    before = len(calls)
    pika_build(PERSONAS, _instruct, respond, _reward, n_candidates=3, seed=3, cache=cache)
    assert len(calls) == before


def test_transform_drops_duplicates_and_records_why(tmp_path):
    rows = [
        {"prompt": "What is X?", "responses": ["a", "b"], "rewards": [0.1, 0.9], "domain": "d1", "persona": "p"},
        {"prompt": "what is x", "responses": ["c", "d"], "rewards": [0.5, 0.2], "domain": "d2", "persona": "p"},
        {"prompt": "What is Y?", "responses": ["e", "f"], "rewards": [0.3, 0.3], "domain": "d2", "persona": "p"},
        {"prompt": "What is Z?", "responses": [], "rewards": [], "domain": "d1", "persona": "p"},
    ]
    fn = make_pika_transform(rewards_column="rewards", form="dpo", batch_size=2, curation_dir=str(tmp_path))
    out = fn(Dataset.from_list(rows))
    # Row 0 kept (margin 0.8); row 1 duplicate of 0; row 2 no distinct pair (equal rewards); row 3 no candidates.
    assert out.to_list() == [
        {
            "prompt": [{"role": "user", "content": "What is X?"}],
            "chosen": [{"role": "assistant", "content": "b"}],
            "rejected": [{"role": "assistant", "content": "a"}],
            "domain": "d1",
        }
    ]
    records = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in records] == [
        "kept",
        "duplicate of row 0",
        "no distinct chosen/rejected pair",
        "no candidate responses",
    ]
    assert records[0]["margin"] == pytest.approx(0.8) and records[0]["source"] == "d1"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["kept_per_source"] == {"d1": {"kept": 1, "total": 2}, "d2": {"kept": 0, "total": 2}}
    assert fn.summary["pika/kept"] == 1 and fn.summary["pika/domain_frac/d1"] == 1.0


def test_model_scored_transform_prefers_the_likely_response(tiny_model_dir):
    from trl_ext.inference.scoring import sequence_logprobs
    from trl_ext.models import load_model, load_tokenizer

    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    responses = ["the the the the the", "Quixotic zephyrs vex jumbled 42 wyverns.", "ok"]
    rows = [{"prompt": "Say something.", "responses": responses}]
    fn = make_pika_transform(model, tok, length_penalty=0.01)
    out = fn(Dataset.from_list(rows))
    # Independently: score each candidate alone, subtract the penalty, take the argmax.
    prompt = [{"role": "user", "content": "Say something."}]
    scored = [sequence_logprobs(model, tok, [prompt], [[{"role": "assistant", "content": r}]], progress=False)[0]
              for r in responses]  # fmt: skip
    rewards = [s["mean_logprob"] - 0.01 * s["num_tokens"] for s in scored]
    best = max(range(3), key=lambda j: rewards[j])
    assert out[0]["completion"] == [{"role": "assistant", "content": responses[best]}]
    assert fn.result.scores[0]["rewards"] == pytest.approx(rewards, abs=1e-5)


def test_builtin_dataset_is_deterministic_and_has_duplicates():
    from trl_ext.data import load_dataset

    a, b = load_dataset("builtin:pika_expert"), load_dataset("builtin:pika_expert")
    assert a["train"].to_list() == b["train"].to_list()
    assert len(a["train"]) == 26 and len(a["test"]) == 6
    assert sum(d is not None for d in duplicate_of(a["train"]["prompt"])) == 2
    assert all(len(r) == 4 for r in a["train"]["responses"])
    assert set(load_dataset("builtin:pika_expert", "sft")["train"].column_names) == {"prompt", "completion", "domain"}


def test_cli_transform_and_training(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "pika.jsonl"
    code = main(["transform", "pika", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:pika_expert",
                 "--split", "train", "--n_keep", "5", "--batch_size", "8", "--output", str(out)])  # fmt: skip
    assert code == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(kept) == 5 and set(kept[0]) == {"prompt", "completion", "domain", "difficulty"}
    record = tmp_path / "pika.jsonl.curation" / "pika" / "train"
    scores = [json.loads(line) for line in (record / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 26 and sum(s["kept"] for s in scores) == 5
    assert sum(s["reason"].startswith("duplicate") for s in scores) == 2
    assert "pika/kept: 5" in capsys.readouterr().out
    # The same command again resumes from the finished batches: nothing is rewritten, the output is the same.
    stamps = {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()}
    assert len(stamps) == 4  # 26 rows in batches of 8
    first = out.read_text()
    out.unlink()
    code = main(["transform", "pika", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:pika_expert",
                 "--split", "train", "--n_keep", "5", "--batch_size", "8", "--output", str(out)])  # fmt: skip
    assert code == 0 and out.read_text() == first
    assert {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()} == stamps

    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:pika_expert",
                 "--dataset_config", "candidates", "--transforms", "pika:n_keep=4", "--output_dir",
                 str(tmp_path / "run"), "--max_steps", "1", "--per_device_train_batch_size", "2", "--max_length", "128",
                 "--report_to", "none", "--save_strategy", "no"])  # fmt: skip
    assert code == 0
