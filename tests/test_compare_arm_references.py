"""`trl-ext compare`: an option `arm:LABEL` reads an earlier arm's final model (VLA-OPD's students distil from the
teacher arm), the same seed's under `--seeds`, and the starting model for `arm:base`."""

import json
from pathlib import Path

import pytest

from trl_ext.cli import main
from trl_ext.compare.arms import parse_arms, with_seeds
from trl_ext.compare.comparison import Comparison
from trl_ext.compare.metrics import parse_metric
from trl_ext.run.recipe import RecipeError

TEACHER = {"label": "teacher", "method": "sft", "max_steps": 3}
STUDENT = {"label": "student", "method": "vla_opd", "teacher_model_name_or_path": "arm:teacher"}


def _compare(tmp_path: Path, model_dir: str, arms: str) -> tuple[dict, Path]:
    """`trl-ext compare --config` of `arms` (YAML list items) on the tiny model: one step each on builtin:arith,
    numeric match of 8 new tokens on 4 rows; (compare.json, the output folder)."""
    config = tmp_path / "arms.yaml"
    config.write_text(
        f"arms:\n{arms}dataset_name: builtin:arith\nmax_steps: 1\nper_device_train_batch_size: 2\nreport_to: none\n"
        "save_strategy: 'no'\neval: numeric_match\neval_rows: 4\neval_max_new_tokens: 8\n"
    )
    out = tmp_path / "out"
    argv = ["compare", "--config", str(config), "--output_dir", str(out), "--model_name_or_path", model_dir]
    assert main(argv) == 0
    return json.loads((out / "compare.json").read_text()), out


def _stage_values(comparison: Comparison, model: str = "start") -> dict[str, dict]:
    return {Path(stage["output_dir"]).name: stage for stage in comparison.recipe(model)["stages"]}


def test_a_reference_is_the_earlier_arms_folder_and_base_is_the_starting_model(tmp_path):
    arms = parse_arms(
        ["base", TEACHER, STUDENT, {**STUDENT, "label": "from_base", "teacher_model_name_or_path": "arm:base"}]
    )
    stages = _stage_values(Comparison(arms=arms, metric=parse_metric("numeric_match"), output_dir=str(tmp_path)))
    assert stages["student"]["teacher_model_name_or_path"] == str(tmp_path / "teacher")
    assert stages["from_base"]["teacher_model_name_or_path"] == "start"
    assert stages["teacher"]["max_steps"] == 3


def test_under_seeds_each_seed_reads_its_own_teacher(tmp_path):
    arms = with_seeds(parse_arms([TEACHER, STUDENT]), [0, 1])
    assert [arm.label for arm in arms] == ["teacher-s0", "teacher-s1", "student-s0", "student-s1"]
    stages = _stage_values(Comparison(arms=arms, metric=parse_metric("numeric_match"), output_dir=str(tmp_path)))
    assert stages["student-s0"]["teacher_model_name_or_path"] == str(tmp_path / "teacher-s0")
    assert stages["student-s1"]["teacher_model_name_or_path"] == str(tmp_path / "teacher-s1")


def test_a_reference_to_a_later_or_unknown_arm_is_refused():
    with pytest.raises(RecipeError, match="'teacher' comes after it"):
        parse_arms([STUDENT, TEACHER])
    with pytest.raises(RecipeError, match="'nobody' is not an arm"):
        parse_arms([TEACHER, {**STUDENT, "teacher_model_name_or_path": "arm:nobody"}])
    with pytest.raises(RecipeError, match="'student' comes after it|'student' is not an arm"):
        parse_arms([TEACHER, {**STUDENT, "teacher_model_name_or_path": "arm:student"}])


@pytest.mark.slow
def test_a_student_arm_distils_from_the_teacher_arm_trained_before_it(tiny_model_dir, tmp_path):
    """Through the CLI on the tiny model: the teacher arm trains first, the student loads its saved folder (a path
    that does not exist before the teacher stage ran) and trains; an arm that starts from the teacher's model at lr 1e-12
    ends with the teacher's weights, not the starting model's, even with --model_name_or_path on the command line."""
    from safetensors.torch import load_file

    arms = (
        "  - {label: teacher, method: sft, learning_rate: 1.0e-2}\n"
        "  - {label: student, method: vla_opd, teacher_model_name_or_path: 'arm:teacher', max_completion_length: 8}\n"
        "  - {label: after, method: sft, model_name_or_path: 'arm:teacher', learning_rate: 1.0e-12}\n"
    )
    report, out = _compare(tmp_path, tiny_model_dir, arms)
    assert [arm["arm"] for arm in report["arms"]] == ["teacher", "student", "after"]
    assert report["arms"][1]["steps"] == 1
    assert (out / "student" / "model.safetensors").is_file()
    teacher, after = load_file(out / "teacher" / "model.safetensors"), load_file(out / "after" / "model.safetensors")
    start = load_file(f"{tiny_model_dir}/model.safetensors")
    assert max((after[k] - teacher[k]).abs().max().item() for k in teacher) < 1e-8
    assert max((teacher[k] - start[k]).abs().max().item() for k in teacher) > 1e-3


def test_arms_come_before_the_flags(capsys):
    """The arms are the words before the first flag, so a flag's value is never read as an arm; arms written after
    the flags are refused with the order to use."""
    from trl_ext.cli.compare import parse_command

    args, flags = parse_command(
        ["sft", "asft", "--eval", "numeric_match", "--model_name_or_path", "m", "--max_steps", "3"]
    )
    assert args.arms == ["sft", "asft"] and args.eval == "numeric_match"
    assert flags == ["--model_name_or_path", "m", "--max_steps", "3"]
    assert main(["compare", "--eval", "numeric_match", "sft", "asft"]) == 2
    assert "Name the arms first, before any flag" in capsys.readouterr().err


def test_a_metric_option_naming_an_arm_reads_its_final_model_and_bad_names_are_refused(tmp_path):
    """SRPPO's self-reward metric scores against the SFT arm's model: `arm:sft` in a metric's options is that arm's
    folder, `arm:base` the starting model; an unknown arm, or one the main metric would read while arms still train
    (`eval_every`), is refused before anything trains."""
    arms = parse_arms(["base", {"label": "sft", "method": "sft"}, {"label": "rl", "method": "grpo"}])
    also = parse_metric(
        "reward:self_reward_log_ratio:sft_model_name_or_path='arm:sft':base_model_name_or_path='arm:base'"
    )
    comparison = Comparison(arms=arms, metric=parse_metric("numeric_match"), also=[also], output_dir=str(tmp_path))
    comparison.resolve_metric_references("start")
    assert also.options == {"sft_model_name_or_path": str(tmp_path / "sft"), "base_model_name_or_path": "start"}

    bad = parse_metric("reward:self_reward_log_ratio:sft_model_name_or_path='arm:nobody'")
    with pytest.raises(RecipeError, match="arm:nobody is not an arm of this comparison"):
        Comparison(arms=arms, metric=bad, output_dir=str(tmp_path)).resolve_metric_references("start")
    early = parse_metric("reward:self_reward_log_ratio:sft_model_name_or_path='arm:sft'")
    with pytest.raises(RecipeError, match="pass --eval_every 0"):
        Comparison(arms=arms, metric=early, eval_every=2, output_dir=str(tmp_path)).resolve_metric_references("s")


def test_an_untrained_arm_measures_another_arms_model_its_own_way_without_training_it_again(tiny_model_dir, tmp_path):
    """`{label: sft_2tok, method: base, model_name_or_path: arm:sft, eval_max_new_tokens: 2}`: the sft arm's model
    measured again with 2 new tokens, its values equal answers generated here from the sft arm's saved folder; one
    arm trained (nothing saved in the measuring arm's folder); the base arm stays the pairing reference."""
    import torch

    from trl_ext.evaluation.judges import numeric_match
    from trl_ext.inference.generation import generate
    from trl_ext.models import load_tokenizer, load_trained

    arms = (
        "  - base\n  - {label: sft, method: sft, learning_rate: 1.0e-2}\n"
        "  - {label: sft_2tok, method: base, model_name_or_path: 'arm:sft', eval_max_new_tokens: 2}\n"
    )
    report, out = _compare(tmp_path, tiny_model_dir, arms)
    base, sft, again = report["arms"]
    assert again["method"] == "none (measures arm:sft)" and again["steps"] == 0
    assert not (out / "sft_2tok" / "model.safetensors").exists() and (out / "sft" / "model.safetensors").exists()
    assert report["paired_with"] == "base" and sft["vs_base"] is not None

    rows = eval_rows_of("builtin:arith", 4)
    model, tokenizer = load_trained(str(out / "sft")).eval(), load_tokenizer(str(out / "sft"))
    with torch.no_grad():
        answers = generate(model, tokenizer, [row["prompt"] for row in rows], 2, 16)
    assert again["per_row"] == [float(numeric_match(None, a, r["answer"])) for a, r in zip(answers, rows, strict=True)]


def eval_rows_of(dataset: str, n: int) -> list[dict]:
    from trl_ext.compare.evaluation import eval_rows

    return eval_rows(Comparison(arms=[], metric=parse_metric("numeric_match"), eval_rows=n), dataset)


def test_a_measuring_arm_takes_only_a_model_and_under_seeds_reads_each_seeds_arm(tmp_path):
    with pytest.raises(RecipeError, match="takes no options or stages but model_name_or_path"):
        parse_arms([TEACHER, {"label": "x", "method": "base", "learning_rate": 1.0}])
    arms = with_seeds(
        parse_arms([TEACHER, {"label": "t2", "method": "base", "model_name_or_path": "arm:teacher"}]), [0, 1]
    )
    assert [arm.label for arm in arms] == ["teacher-s0", "teacher-s1", "t2-s0", "t2-s1"]
    models = Comparison(arms=arms, metric=parse_metric("numeric_match"), output_dir=str(tmp_path)).arm_models("m")
    assert models["t2-s1"] == str(tmp_path / "teacher-s1") and models["t2-s0"] == str(tmp_path / "teacher-s0")
