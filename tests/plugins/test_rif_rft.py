"""rif_rft: the card's tests that can fail (the filter's decisions on the card's reward matrix, the GRPO gradient
invariance that makes the filter exact, the AA/FM arithmetic, determinism without mutating the source), resume with
identical output, the forgetting callback against a hand-computed sequence of runs, the built-in tasks and reward,
a 2-process run equal to one, and the real CLI (`trl-ext transform rif_rft`, `trl-ext train grpo --transforms
rif_rft --callbacks rif_forgetting`)."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.rewards.toolkit import completion_text
from trl_ext.testing import run_cli
from trl_ext_plugins.rif_rft import (
    ContinualEvalCallback,
    answer_matches,
    average_accuracy,
    decide_instance,
    forgetting_measure,
    instance_stats,
    make_rif_transform,
    rollout_instance_filter,
)

# The card's test 1: the K = 4 rollout rewards of four instances.
CARD_REWARDS = [[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 1]]


def _dataset(n=4):
    return Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"q{i}"}], "answer": str(i), "task": "t"} for i in range(n)]
    )


class TableGenerator:
    """Rollout texts from a table keyed by the question ("1"/"0": the reward the stub reward reads back)."""

    def __init__(self, table, fail_after=None):
        self.table, self.fail_after, self.calls = table, fail_after, 0

    def __call__(self, prompts, num_rollouts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return [str(r) for p in prompts for r in self.table[p[-1]["content"]][:num_rollouts]]


def read_reward(prompts=None, completions=(), **kwargs):
    """The stub reward: the completion's text is its reward."""
    return [float(completion_text(c)) for c in completions]


def _card_transform(**options):
    table = {f"q{i}": rewards for i, rewards in enumerate(CARD_REWARDS)}
    return make_rif_transform(generator=TableGenerator(table), rewards=[read_reward], num_rollouts=4, **options)


# ---- the card's tests ----------------------------------------------------------------------------------------------


def test_card_case_keeps_the_instances_with_reward_variance():
    fn = _card_transform(batch_size=3)
    out = fn(_dataset())
    assert [r["prompt"][0]["content"] for r in out] == ["q2", "q3"]
    assert fn.summary["rif/kept_frac"] == 0.5
    assert fn.summary["rif/all_wrong_frac"] == 0.25 and fn.summary["rif/all_correct_frac"] == 0.25
    # by hand: acc = mean, var = population variance: [1,0,0,0] -> 1/4, 1/4 - 1/16; [1,1,0,1] -> 3/4, 3/4 - 9/16
    assert out["rif_acc"] == [0.25, 0.75]
    assert out["rif_var"] == pytest.approx([3 / 16, 3 / 16])
    assert fn.summary["rif/mean_acc"] == pytest.approx((0 + 1 + 0.25 + 0.75) / 4)
    reasons = [d.reason for d in fn.result.decisions]
    assert reasons == ["all_wrong", "all_correct", "kept", "kept"]

    kept = _card_transform(drop_all_correct=False)(_dataset())
    assert [r["prompt"][0]["content"] for r in kept] == ["q1", "q2", "q3"]
    kept = _card_transform(drop_all_wrong=False)(_dataset())
    assert [r["prompt"][0]["content"] for r in kept] == ["q0", "q2", "q3"]


def test_decision_rule_band_eps_and_non_binary_rewards():
    assert decide_instance([0.5, 0.5, 0.5, 0.5]) == (False, "no_variance")  # neither all wrong nor all correct
    assert decide_instance([0.5, 0.5, 0.5, 0.5], eps=-0.0) == (False, "no_variance")
    assert decide_instance([1, 0, 0, 0], min_acc=0.3) == (False, "outside_acc_band")  # acc 0.25 < 0.3
    assert decide_instance([1, 1, 0, 1], max_acc=0.7) == (False, "outside_acc_band")  # acc 0.75 > 0.7
    assert decide_instance([1, 0, 0, 0], eps=0.19) == (False, "no_variance")  # var 3/16 = 0.1875 <= 0.19
    assert decide_instance([1, 0, 0, 0], eps=0.18) == (True, "kept")
    assert decide_instance([2, 2, 2], correct_reward=2.0) == (False, "all_correct")  # e.g. accuracy + format
    assert decide_instance([math.nan, 1, 0]) == (True, "kept")  # NaN (None) rewards left out
    assert decide_instance([math.nan, math.nan]) == (False, "no_reward")
    assert instance_stats([1, 0, 0, 0]) == (0.25, 0.1875)


def test_an_equal_reward_group_adds_no_gradient():
    """The card's test 2: with scale_rewards="none" (A = r - group mean) and a fixed normaliser (dr_grpo's
    batch x max_completion_length, held equal), a batch with an all-equal-reward group has the gradient of the batch
    without it."""
    torch.manual_seed(0)
    policy = torch.nn.Linear(3, 5)
    features = torch.randn(3, 4, 6, 3)  # 3 groups x G=4 completions x 6 tokens
    tokens = torch.randint(0, 5, (3, 4, 6))
    rewards = torch.tensor([[1.0, 0, 0, 1], [1.0, 1, 1, 1], [0.0, 1, 0, 0]])  # group 1 all equal

    def grad(groups):
        policy.zero_grad()
        logp = torch.log_softmax(policy(features[groups]), -1).gather(-1, tokens[groups, ..., None])[..., 0]
        r = rewards[groups]
        advantages = r - r.mean(dim=1, keepdim=True)
        ratio = torch.exp(logp - logp.detach())  # on-policy: 1, gradient of log p
        loss = -(advantages[..., None] * ratio).sum() / (12 * 6)
        loss.backward()
        return policy.weight.grad.clone()

    with_group, without = grad([0, 1, 2]), grad([0, 2])
    assert torch.allclose(with_group, without, atol=1e-7)
    assert with_group.abs().sum() > 0


def test_card_average_accuracy_and_forgetting():
    a = [[0.8], [0.6, 0.9], [0.5, 0.7, 0.95]]
    assert average_accuracy(a) == pytest.approx((0.5 + 0.7 + 0.95) / 3) and round(average_accuracy(a), 4) == 0.7167
    assert forgetting_measure(a) == pytest.approx(((0.8 - 0.5) + (0.9 - 0.7)) / 2) == pytest.approx(0.25)
    assert forgetting_measure(a, 2) == pytest.approx(0.8 - 0.6) and average_accuracy(a, 2) == pytest.approx(0.75)
    assert math.isnan(forgetting_measure(a, 1))


class NoisyGenerator:
    """Rollouts drawn from torch's global generator: the filter's per-batch seed decides them."""

    def __call__(self, prompts, num_rollouts):
        return [str(int(torch.rand(()) < 0.5)) for _ in prompts for _ in range(num_rollouts)]


def test_same_seed_same_kept_set_and_the_source_is_untouched():
    source = _dataset(12)
    before = source.to_list()
    runs = [
        make_rif_transform(generator=NoisyGenerator(), rewards=[read_reward], num_rollouts=4, batch_size=5, seed=s)(
            source
        )
        for s in (0, 0, 1)
    ]
    assert runs[0].to_list() == runs[1].to_list()
    assert runs[0].to_list() != runs[2].to_list()  # another seed, other rollouts
    torch.manual_seed(123)  # the global stream outside the filter does not decide its rollouts
    again = make_rif_transform(generator=NoisyGenerator(), rewards=[read_reward], num_rollouts=4, batch_size=5)(source)
    assert again.to_list() == runs[0].to_list()
    assert source.to_list() == before and source.column_names == ["prompt", "answer", "task"]
    out, stats = rollout_instance_filter(None, None, source, [read_reward], num_rollouts=4, batch_size=5,
                                         generator=NoisyGenerator())  # fmt: skip
    assert out.to_list() == runs[0].to_list() and stats["rif/kept_frac"] == len(out) / 12


def test_interrupted_filter_resumes_to_identical_output(tmp_path):
    table = {f"q{i}": CARD_REWARDS[i % 4] for i in range(7)}
    ds = _dataset(7)  # batches of 3: rows 0-2, 3-5, 6
    reference = make_rif_transform(generator=TableGenerator(table), rewards=[read_reward], num_rollouts=4,
                                   batch_size=3, curation_dir=str(tmp_path / "ref"))(ds)  # fmt: skip
    flaky = TableGenerator(table, fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        make_rif_transform(generator=flaky, rewards=[read_reward], num_rollouts=4, batch_size=3,
                           curation_dir=str(tmp_path / "run"))(ds)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "run" / "batches").iterdir()) == ["000000.json"]
    resumed = TableGenerator(table)
    resumed.__class__.__qualname__ = flaky.__class__.__qualname__  # the same generator: the same run key
    fn = make_rif_transform(generator=resumed, rewards=[read_reward], num_rollouts=4, batch_size=3,
                            curation_dir=str(tmp_path / "run"))  # fmt: skip
    out = fn(ds)
    assert resumed.calls == 2, "only the two unfinished batches are generated again"
    assert out.to_list() == reference.to_list()
    for name in ("scores.jsonl", "summary.json", "rif_metrics.json"):
        assert (tmp_path / "run" / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    # new thresholds re-decide from the saved rollouts without generating
    again = TableGenerator(table)
    make_rif_transform(generator=again, rewards=[read_reward], num_rollouts=4, batch_size=3, drop_all_correct=False,
                       curation_dir=str(tmp_path / "run"))(ds)  # fmt: skip
    assert again.calls == 0


def test_bad_options_are_refused_before_generating():
    for bad in ({"num_rollouts": 1}, {"temperature": 0.0}, {"min_acc": 0.8, "max_acc": 0.2}, {"eps": -1},
                {"batch_size": 0}, {"reward_weights": [1.0, 2.0]}):  # fmt: skip
        with pytest.raises(ValueError):
            make_rif_transform(generator=NoisyGenerator(), rewards=[read_reward], **bad)
    fn = make_rif_transform(generator=TableGenerator({"q0": [0, 0]}), rewards=[read_reward], num_rollouts=2)
    with pytest.raises(ValueError, match="dropped every instance"):
        fn(_dataset(1))


# ---- the forgetting callback ---------------------------------------------------------------------------------------


class Scripted:
    """A task evaluator answering the next accuracy of a script at each call."""

    def __init__(self, values):
        self.values = list(values)

    def __call__(self, model, tokenizer):
        return self.values.pop(0)


def _run(callback, output_dir, steps=1):
    args = SimpleNamespace(output_dir=str(output_dir))
    state = SimpleNamespace(global_step=0, is_world_process_zero=True, log_history=[])
    model = torch.nn.Linear(1, 1)
    callback.on_train_begin(args, state, None, model=model, processing_class="tok")
    state.global_step = steps
    callback.on_train_end(args, state, None, model=model, processing_class="tok")
    return state.log_history


def test_forgetting_callback_follows_the_card_matrix(tmp_path, capsys):
    """Three runs T1, T2, T3 sharing a history file; the accuracies after each are the card's matrix (the untrained
    later tasks score 0.1); the base row is 0.2 everywhere."""
    history = tmp_path / "cl.json"
    after = {  # the evaluations of each run: [train begin (base, first run only)], train end
        "t1": {"t1": [0.2, 0.8], "t2": [0.2, 0.1], "t3": [0.2, 0.1]},
        "t2": {"t1": [0.6], "t2": [0.9], "t3": [0.1]},
        "t3": {"t1": [0.5], "t2": [0.7], "t3": [0.95]},
    }
    logged = {}
    for task, script in after.items():
        callback = ContinualEvalCallback({t: Scripted(v) for t, v in script.items()}, history=history)
        logged[task] = _run(callback, tmp_path / task)[-1]
    assert logged["t1"]["cl/AA"] == pytest.approx(0.8) and "cl/FM" not in logged["t1"]
    assert logged["t2"]["cl/AA"] == pytest.approx((0.6 + 0.9) / 2)
    assert logged["t2"]["cl/FM"] == pytest.approx(0.8 - 0.6)
    assert logged["t3"]["cl/AA"] == pytest.approx(0.7167, abs=1e-4)
    assert logged["t3"]["cl/FM"] == pytest.approx(((0.8 - 0.5) + (0.9 - 0.7)) / 2)
    assert logged["t3"]["cl/acc/t3"] == 0.95
    assert logged["t3"]["cl/delta/t1"] == pytest.approx(0.5 - 0.2)
    saved = json.loads(history.read_text())
    assert saved["base"] == {"t1": 0.2, "t2": 0.2, "t3": 0.2}
    assert saved["rows"]["t2"] == {"t1": 0.6, "t2": 0.9, "t3": 0.1}
    assert "rif_forgetting at step 1: cl/acc/t1=0.5" in capsys.readouterr().out
    finished = ContinualEvalCallback({t: Scripted([0]) for t in after}, history=history)
    finished._load(history)
    with pytest.raises(ValueError, match="every task"):
        _ = finished.j


# ---- data, reward, CLI -----------------------------------------------------------------------------------------


def test_builtin_tasks_and_reward():
    from trl_ext.data import load_dataset

    data = load_dataset("builtin:rif_tasks")
    assert (len(data["train"]), len(data["test"])) == (144, 48)
    assert data["train"]["task"][:3] == ["first", "add", "last"]
    for row in data["test"]:
        question = row["prompt"][0]["content"]
        if row["task"] == "add":  # independently: the two digits of the question summed
            a, b = question.split("What is ")[1].split("?")[0].split(" + ")
            assert int(row["answer"]) == int(a) + int(b) and 1 <= int(a) <= 9
        else:
            word = question.split("'")[1]
            assert row["answer"] == (word[0] if row["task"] == "first" else word[-1]).upper()
    words = {r["prompt"][0]["content"].split("'")[1] for split in data.values() for r in split if r["task"] != "add"}
    train_words = {r["prompt"][0]["content"].split("'")[1] for r in data["train"] if r["task"] != "add"}
    assert len(train_words) == 24 and len(words) == 40  # 16 test words unseen in training
    assert answer_matches("The answer is 7.", "7") and not answer_matches("6", "7")
    assert answer_matches("'B'", "B") and not answer_matches("b", "B")
    assert answer_matches("It is D", "D") and not answer_matches("D is it", "D")
    from trl_ext import get

    reward = get("reward", "rif_task_reward").build()
    assert reward(prompts=[None] * 2, completions=["It is B.", "b"], answer=["B", "B"]) == [1.0, 0.0]
    # a row without a usable answer is not applicable (a None gold read as "None" gave this completion 1.0)
    completions = ["It is None", "It is 7", "x", "x", "x", "The answer is 7."]
    golds = [None, 7, "", "  ", ["B"], True]
    assert reward(prompts=[None] * 6, completions=completions, answer=golds) == [None, 1.0, None, None, None, None]


def test_cli_transform_resume_and_grpo_with_the_callback(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "kept.jsonl"
    argv = ["transform", "rif_rft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:rif_tasks",
            "--split", "test", "--rewards", "rif_task_reward", "--num_rollouts", "2", "--max_new_tokens", "3",
            "--batch_size", "16", "--drop_all_wrong", "false", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 48  # drop_all_wrong=false: a random tiny model solves (almost) nothing, all kept
    assert set(rows[0]) == {"prompt", "answer", "task", "rif_acc", "rif_var"}
    record = tmp_path / "kept.jsonl.curation" / "rif_rft" / "test"
    scores = [json.loads(line) for line in (record / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 48 and all(len(s["rollouts"]) == 2 and s["reason"] == "kept" for s in scores)
    assert [r["rif_acc"] for r in rows] == [sum(s["rewards"]) / 2 for s in scores]
    all_wrong = sum(max(s["rewards"]) == 0 for s in scores) / 48
    printed = capsys.readouterr().out
    assert "rif/kept_frac: 1\n" in printed and f"rif/all_wrong_frac: {all_wrong:.4g}\n" in printed
    summary = json.loads((record / "summary.json").read_text())
    assert summary["kept_per_source"]["add"] == {"kept": 16, "total": 16}
    stamps = {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()}
    first = out.read_text()
    out.unlink()
    assert main(argv) == 0 and out.read_text() == first  # resumed: nothing generated again
    assert {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()} == stamps
    capsys.readouterr()

    run = tmp_path / "run"
    code = main(["train", "grpo", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:rif_tasks",
                 "--rewards", "rif_task_reward",
                 "--transforms", "rif_rft:num_rollouts=2:max_new_tokens=3:drop_all_wrong=false:batch_size=48",
                 "--callbacks", "rif_forgetting:n=2:max_new_tokens=3", "--output_dir", str(run),
                 "--max_steps", "1", "--per_device_train_batch_size", "2", "--num_generations", "2",
                 "--max_completion_length", "4", "--report_to", "none", "--save_strategy", "no"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "rif_forgetting base: first=0" in printed and "rif_forgetting at step 1: cl/acc/first=0" in printed
    saved = json.loads((run / "rif_forgetting.json").read_text())
    assert saved["tasks"] == ["first", "add", "last"] and set(saved["rows"]) == {"first"}


def _transform(model_dir, data, out, nproc):
    run_cli("transform", "rif_rft", "--model_name_or_path", model_dir, "--dataset_name", data, "--output", out,
            "--rewards", "rif_task_reward", "--num_rollouts", "3", "--max_new_tokens", "4", "--batch_size", "2",
            "--drop_all_wrong", "false", nproc=nproc)  # fmt: skip


@pytest.mark.slow
def test_torchrun_filter_equals_one_process(tiny_model_dir, tmp_path):
    from trl_ext.data import load_dataset

    data = tmp_path / "rows.jsonl"
    load_dataset("builtin:rif_tasks")["test"].select(range(5)).to_json(str(data), lines=True)  # batches 2, 2, 1
    _transform(tiny_model_dir, data, tmp_path / "one" / "out.jsonl", nproc=1)
    _transform(tiny_model_dir, data, tmp_path / "two" / "out.jsonl", nproc=2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "out.jsonl").read_text() == (one / "out.jsonl").read_text()
    record = Path("out.jsonl.curation/rif_rft/train")
    for name in ("scores.jsonl", "summary.json", "manifest.json", "rif_metrics.json"):
        assert (two / record / name).read_text() == (one / record / name).read_text(), name
    assert len(list((two / record / "batches").iterdir())) == 3
