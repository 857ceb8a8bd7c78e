"""`trl-ext bench METHOD` for non-SFT bases (trl_ext.cli.bench_rl): the method's trainer against its base's reference
trainer, built as `trl-ext train` builds them. Structure is asserted, never speed (no timing assertions)."""

import math

import pytest
import torch
from trl import GRPOTrainer

from trl_ext import Method, hookimpl, registry
from trl_ext.cli import bench, bench_rl
from trl_ext.run.bases import TrainingBase, register_base

REPORT_KEYS = {
    "method", "base", "reference", "reference_drops", "model", "dataset", "device", "dtype", "batch", "step_tokens",
    "steps", "warmup", "results", "time_ratio", "cpu_ratio", "peak_ratio", "forward_s", "forward_cpu_s",
    "extra_forwards", "budget_s", "cpu_budget_s", "time_vs_budget", "cpu_vs_budget", "tolerance", "within_budget",
    "cpu_within_budget",
}  # fmt: skip
REWARD_KEYS = {"reward_weights", "step_s", "step_cpu_s", "rewards", "total", "limit"}
RESULT_KEYS = {"name", "trainer", "step_s", "step_cpu_s", "peak_mib", "steps_s"}

EXTRA_FORWARDS: list[tuple[int, int]] = []  # (rows, tokens) of each extra forward the test method ran
EXPERT_ROWS_SEEN: list[list[str]] = []


def expert_rows(stage, model, tokenizer):
    """A hybrid base's `extra_kwargs` builder: an argument only the method's trainer takes (as an expert dataset)."""
    return {"expert_rows": ["an expert answer"]}


class ExpertGRPO(GRPOTrainer):
    def __init__(self, *args, expert_rows, **kwargs):
        EXPERT_ROWS_SEEN.append(expert_rows)
        super().__init__(*args, **kwargs)


class ExtraForwardGRPO(GRPOTrainer):
    """GRPO plus one no-grad forward of the policy over the step's prompt + completion: a teacher's cost."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        EXTRA_FORWARDS.append(tuple(ids.shape))
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


class BenchTestPlugin:
    @hookimpl
    def register_methods(self, register):
        register(
            Method(
                name="bench_extra_forward",
                trainer=ExtraForwardGRPO,
                config="trl:GRPOConfig",
                base="grpo",
                extra_forwards=1.0,  # declared: one forward of the step's batch
                description="test: GRPO plus one extra forward per step",
            )
        )
        register(Method(name="bench_hybrid", trainer=ExpertGRPO, config="trl:GRPOConfig", base="bench_test_hybrid"))


@pytest.fixture
def bench_plugin():
    register_base(  # a base whose trainer arguments the reference does not take, as an SFT+GRPO hybrid's
        TrainingBase(
            name="bench_test_hybrid",
            trainer="trl:GRPOTrainer",
            column_shapes=(("prompt",),),
            dataset_form="grpo",
            takes_rewards=True,
            extra_kwargs=f"{__name__}:expert_rows",
        )
    )
    reg = registry()
    if "bench-rl-test" not in reg.plugins:
        reg.add_plugin(BenchTestPlugin(), "bench-rl-test")
    EXTRA_FORWARDS.clear()
    EXPERT_ROWS_SEEN.clear()
    yield


def _grpo_flags(model_dir: str) -> list[str]:
    return [
        "--model_name_or_path", model_dir, "--dataset_name", "builtin:json_extract", "--rewards",
        "json_validity,json_structure", "--reward_weights", "1.0", "0.5", "--num_generations", "2",
        "--max_completion_length", "8", "--per_device_train_batch_size", "2", "--steps", "2", "--warmup", "1",
    ]  # fmt: skip


def _check_structure(report: dict, method: str, reference: str, trainer: str, drops=()) -> None:
    assert set(report) == REPORT_KEYS | REWARD_KEYS
    assert report["method"] == method and report["reference"] == f"{reference} (trl)"
    assert report["reference_drops"] == list(drops) and report["steps"] == 2 and report["warmup"] == 1
    assert report["batch"] == {"completions": 2, "num_generations": 2, "max_completion_length": 8}
    assert report["device"] == "cpu (1 thread)" and report["dtype"] == "float32"
    ref, meth = report["results"]
    assert set(ref) == set(meth) == RESULT_KEYS
    assert (ref["trainer"], meth["trainer"], meth["name"]) == (reference, trainer, method)
    assert len(ref["steps_s"]) == len(meth["steps_s"]) == 2  # the warm-up step is not among the timed ones
    for key in ("time_ratio", "cpu_ratio", "forward_s", "budget_s"):
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert report["time_ratio"] == pytest.approx(meth["step_s"] / ref["step_s"])
    assert report["budget_s"] == pytest.approx(ref["step_s"] + report["extra_forwards"] * report["forward_s"])
    assert report["within_budget"] == (meth["step_s"] <= 1.1 * report["budget_s"])
    assert report["step_tokens"][0] == 2  # the forward unit: one step's 2 completions, prompt + completion
    assert [r["name"] for r in report["rewards"]] == ["json_validity_reward", "json_structure_reward"]
    assert report["reward_weights"] == [1.0, 0.5] and report["step_s"] == meth["step_s"]
    table = bench_rl.format_report(report)
    assert f"vs {reference} (trl)" in table and "intrinsic x 1.1" in table and "json_structure_reward" in table


@pytest.mark.parametrize(("method", "reference"), [("grpo", "GRPOTrainer"), ("rloo", "RLOOTrainer")])
def test_bench_a_trl_trainer_against_its_own_base(tiny_model_dir, method, reference, monkeypatch):
    last_inputs = []
    run_interleaved = bench_rl._run_interleaved

    def recording(*args, **kwargs):
        runs = run_interleaved(*args, **kwargs)
        last_inputs.extend(run["inputs"] for run in runs)
        return runs

    monkeypatch.setattr(bench_rl, "_run_interleaved", recording)
    report = bench.run([method, *_grpo_flags(tiny_model_dir)])
    # steps alternate between the two trainers, each on its own random streams: the same trainer twice samples the
    # same completions at the last step, as two separate runs with one seed would
    ref_inputs, method_inputs = last_inputs
    assert torch.equal(ref_inputs["completion_ids"], method_inputs["completion_ids"])
    assert torch.equal(ref_inputs["prompt_ids"], method_inputs["prompt_ids"])
    _check_structure(report, method, reference, reference)
    assert report["extra_forwards"] == 0.0 and report["budget_s"] == report["results"][0]["step_s"]


def test_bench_reports_the_declared_intrinsic_cost(bench_plugin, tiny_model_dir):
    report = bench.run(["bench_extra_forward", *_grpo_flags(tiny_model_dir)])
    _check_structure(report, "bench_extra_forward", "GRPOTrainer", "ExtraForwardGRPO")
    assert report["extra_forwards"] == 1.0  # Method(extra_forwards=1.0), read by the bench
    ref, _ = report["results"]
    assert report["budget_s"] == pytest.approx(ref["step_s"] + report["forward_s"])
    assert report["cpu_budget_s"] == pytest.approx(ref["step_cpu_s"] + report["forward_cpu_s"])
    # only the method's trainer ran the extra forward, once per step (warm-up + 2); its last step's batch is the
    # reference's last one, the batch the unit is timed on (same seed, same prompts, same completion length)
    assert len(EXTRA_FORWARDS) == 3 and EXTRA_FORWARDS[-1] == tuple(report["step_tokens"])
    assert "+ 1 forward(s)" in bench_rl.format_report(report)


def test_a_hybrid_base_argument_goes_to_the_method_only(bench_plugin, tiny_model_dir):
    report = bench.run(["bench_hybrid", *_grpo_flags(tiny_model_dir)])
    _check_structure(report, "bench_hybrid", "GRPOTrainer", "ExpertGRPO", drops=["expert_rows"])
    assert EXPERT_ROWS_SEEN == [["an expert answer"]]  # built once per trainer; only the method's takes it
    assert "takes no expert_rows" in bench_rl.format_report(report)


def test_only_rewards_keeps_the_reward_share_report_and_is_refused_without_rewards(tiny_model_dir):
    report = bench.run(["grpo", *_grpo_flags(tiny_model_dir), "--only_rewards"])
    assert "reference" not in report and "results" not in report  # one trainer: bench_rewards' report
    assert [r["name"] for r in report["rewards"]] == ["json_validity_reward", "json_structure_reward"]
    with pytest.raises(SystemExit, match="dpo-based, which takes no rewards"):
        bench.run(["dpo", "--model_name_or_path", tiny_model_dir, "--only_rewards"])


def test_a_refusal_through_the_cli_prints_its_reason(tiny_model_dir, capsys, monkeypatch):
    from trl_ext.cli import main

    monkeypatch.setenv(bench._MMAP_ENV, "131072")  # as after the bench's re-exec: this process, not a new one
    assert main(["bench", "dpo", "--model_name_or_path", tiny_model_dir, "--only_rewards"]) == 2
    assert "trl-ext: error: --only_rewards: 'dpo' is dpo-based, which takes no rewards" in capsys.readouterr().err


def test_reference_drops_only_the_arguments_its_constructor_does_not_take():
    class Reference:
        def __init__(self, model=None, args=None):
            self.model, self.args = model, args

    dropped: list[str] = []
    cls = bench_rl._accepting(Reference, dropped)
    built = cls(model="m", args="a", expert_dataset="d")
    assert isinstance(built, Reference) and (built.model, built.args) == ("m", "a")
    assert cls.__name__ == "Reference" and dropped == ["expert_dataset"]

    class TakesAll:
        def __init__(self, **kwargs):
            pass

    assert bench_rl._accepting(TakesAll, []) is TakesAll
