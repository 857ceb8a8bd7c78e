"""Recipes as registered contributions (`trl-ext train NAME`, `list`, `info`) and a rerun that keeps finished stages
and resumes the interrupted one with the model an unbroken run gives."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from trl_ext import Recipe
from trl_ext.cli import main
from trl_ext.plugin.registry import registry
from trl_ext.run import stage as stage_module
from trl_ext.run.progress import MARKER
from trl_ext.run.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_recipe_is_listed_and_its_shipped_copy_is_the_same_file(capsys):
    recipes = registry().components("recipe")
    assert {"oncoreason_sft_grpo", "conmax", "clsrl_think", "rasynergy", "irac_sft"} <= {r.name for r in recipes}
    assert main(["list", "--kind", "recipe"]) == 0
    listed = capsys.readouterr().out
    for record in recipes:
        assert record.name in listed and record.paper is not None
        package, _, path = record.source.partition(":")
        shipped = ROOT / "examples" / "recipes" / f"{record.name}.yaml"
        if shipped.exists():  # the --config copy is a link to the packaged file, not a second copy
            assert shipped.resolve() == (ROOT / "plugins" / package.split(".")[1] / path).resolve()
            assert load_recipe(shipped) == record.load()


def test_info_shows_a_recipes_stages_in_order(capsys):
    assert main(["info", "oncoreason_sft_grpo"]) == 0
    out = capsys.readouterr().out
    assert "Stages (2;" in out
    assert out.index("1. sft -> outputs/oncoreason/stage-1-sft") < out.index("2. grpo -> outputs/oncoreason/stage-2")
    assert "onco_format_reward" in out and "arXiv:2510.17532" in out


def _two_stage_recipe(model_dir: str, output_dir: Path) -> dict:
    return {
        "model_name_or_path": model_dir,
        "dataset_name": "builtin:arith",
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "report_to": "none",
        "logging_steps": 1,
        "stages": [
            {"method": "sft", "max_steps": 2, "save_strategy": "no"},
            {"method": "sft", "max_steps": 4, "save_strategy": "steps", "save_steps": 2},
        ],
    }


@pytest.fixture
def registered_recipe(tiny_model_dir, tmp_path):
    """A two-stage SFT recipe registered as `tiny_two_stage`, writing under `tmp_path/<run>`."""
    reg = registry()
    records = []

    def register(run: str) -> str:
        record = Recipe(name=f"tiny_two_stage_{run}", source=_two_stage_recipe(tiny_model_dir, tmp_path / run))
        reg._register_fn("recipe", "tests", [])(record)
        records.append(record)
        return record.name

    yield register
    for record in records:
        reg._remove(record)


class _KilledAt(TrainerCallback):
    """Raises at the end of optimizer step `step`, as a killed job stops (the checkpoints saved before it stay)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_a_recipe_interrupted_in_stage_2_resumes_there_and_ends_with_the_unbroken_runs_model(
    registered_recipe, tmp_path, monkeypatch, capsys
):
    unbroken = registered_recipe("unbroken")
    assert main(["train", unbroken]) == 0
    expected = _weights(tmp_path / "unbroken" / "stage-2-sft")

    name = registered_recipe("broken")
    build = stage_module.build_trainer

    def build_with_a_kill(stage, dataset):
        trainer, tokenizer = build(stage, dataset)
        if stage.config.output_dir.endswith("stage-2-sft"):
            trainer.add_callback(_KilledAt(3))  # after checkpoint-2 was saved
        return trainer, tokenizer

    monkeypatch.setattr(stage_module, "build_trainer", build_with_a_kill)
    with pytest.raises(KeyboardInterrupt):
        main(["train", name])
    first, second = tmp_path / "broken" / "stage-1-sft", tmp_path / "broken" / "stage-2-sft"
    assert '"state": "finished"' in (first / MARKER).read_text()
    assert '"state": "started"' in (second / MARKER).read_text()
    assert not (second / "model.safetensors").exists() and (second / "checkpoint-2").is_dir()
    stage_1_written = (first / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(stage_module, "build_trainer", build)
    capsys.readouterr()

    assert main(["train", name]) == 0  # the same command again
    out = capsys.readouterr().out
    assert "stage 1/2: sft" in out and "kept" in out  # not retrained
    assert (first / "model.safetensors").stat().st_mtime_ns == stage_1_written
    assert f"resuming from {second / 'checkpoint-2'}" in out
    resumed = _weights(second)
    assert resumed.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=1e-6, msg=key)
    assert '"state": "finished"' in (second / MARKER).read_text()


def test_a_stage_whose_settings_changed_is_not_kept(registered_recipe, tmp_path, tiny_model_dir):
    name = registered_recipe("changed")
    assert main(["train", name]) == 0
    # Stage 1 with another learning rate: its finished model no longer matches, and is not silently replaced.
    assert main(["train", name, "--learning_rate", "5e-4"]) == 2
    assert main(["train", name, "--learning_rate", "5e-4", "--overwrite_output_dir", "true"]) == 0


def test_a_failing_stage_is_named_and_the_stages_before_it_stay_finished(
    registered_recipe, tmp_path, monkeypatch, caplog
):
    name = registered_recipe("failing")
    build = stage_module.build_trainer

    def failing_in_stage_2(stage, dataset):
        if stage.config.output_dir.endswith("stage-2-sft"):
            raise ValueError("the data of stage 2 is bad")
        return build(stage, dataset)

    monkeypatch.setattr(stage_module, "build_trainer", failing_in_stage_2)
    assert main(["train", name]) == 2
    assert f"Stage 2/2: sft -> {tmp_path / 'failing' / 'stage-2-sft'} failed" in caplog.text
    assert '"state": "finished"' in (tmp_path / "failing" / "stage-1-sft" / MARKER).read_text()


def test_a_registered_recipe_and_a_config_file_are_not_taken_together(registered_recipe, tmp_path):
    name = registered_recipe("both")
    (tmp_path / "r.yaml").write_text("method: sft\n")
    assert main(["train", name, "--config", str(tmp_path / "r.yaml")]) == 2


def test_command_line_output_dir_and_model_root_a_multi_stage_recipe(
    registered_recipe, tmp_path, tiny_model_dir, monkeypatch
):
    # per stage, --output_dir would send every stage to one folder and --model_name_or_path would start every stage
    # from the base model: they are the recipe's root folder and its first stage's model
    name = registered_recipe("rooted")
    seen = []
    monkeypatch.setattr(stage_module, "run_stages", lambda parsed: seen.extend(parsed) or "done")
    root = tmp_path / "elsewhere"
    assert main(["train", name, f"--output_dir={root}", "--model_name_or_path", tiny_model_dir]) == 0
    assert [s.config.output_dir for s in seen] == [str(root / "stage-1-sft"), str(root / "stage-2-sft")]
    assert seen[0].model_args.model_name_or_path == tiny_model_dir and seen[0].model_given
    assert not seen[1].model_given  # trained from stage 1's output
    assert seen[1].after(str(root / "stage-1-sft")).model_args.model_name_or_path == str(root / "stage-1-sft")


def test_a_stage_that_names_its_folder_keeps_the_name_under_the_command_lines_root():
    from trl_ext.run.recipe import rooted_at_command_line, stages

    recipe = {
        "model_name_or_path": "base",
        "stages": [
            {"method": "sft", "model_name_or_path": "recipe-model", "output_dir": "runs/warmup"},
            {"method": "grpo"},
            {"method": "sft", "model_name_or_path": "another"},
        ],
    }
    plan = stages(rooted_at_command_line(recipe, "/tmp/root", "mine"))
    assert [s.get("output_dir") for s in plan] == [
        "/tmp/root/warmup",
        "/tmp/root/stage-2-grpo",
        "/tmp/root/stage-3-sft",
    ]
    assert [s.get("model_name_or_path") for s in plan] == ["mine", None, "another"]
    assert rooted_at_command_line(recipe, None, None)["stages"] == recipe["stages"]


def test_dry_run_checks_every_stage_prints_the_plan_and_writes_nothing(
    registered_recipe, tmp_path, monkeypatch, capsys
):
    name = registered_recipe("dry")
    monkeypatch.setattr(stage_module, "build_trainer", lambda *a: pytest.fail("a dry run built a trainer"))
    assert main(["train", name, "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "2 stages" in out and "2 steps on builtin:arith" in out and "4 steps on builtin:arith" in out
    assert "the previous stage's model" in out and out.count("to train") == 2
    assert not (tmp_path / "dry").exists()
    # a stage's data problem fails the dry run as it would fail the real one, before any model loads
    assert main(["train", "grpo", "--dry_run", "--dataset_name", "builtin:arith", "--rewards", "think2sql_qatch"]) == 2
    assert "think2sql_qatch" in capsys.readouterr().err


def test_a_lora_stage_after_a_lora_stage_keeps_the_first_ones_update(tiny_model_dir, tmp_path):
    """Stage 2 trains a new LoRA on stage 1's model with it merged; its adapter names stage 1's folder as its base, so
    loading stage 2's output applies both. At a learning rate too small to move anything, stage 2's result is stage
    1's model (it used to be the bare base model: stage 1's adapter was lost)."""
    import json

    import yaml

    from trl_ext.models import load_model, load_trained

    recipe = {
        "model_name_or_path": tiny_model_dir,
        "dataset_name": "builtin:arith",
        "output_dir": str(tmp_path / "chain"),
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "save_strategy": "no",
        "use_peft": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "gradient_checkpointing": False,
        "stages": [
            {"method": "sft", "max_steps": 3, "learning_rate": 5e-2},
            {"method": "sft", "max_steps": 1, "learning_rate": 1e-30},
        ],
    }
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(tmp_path / "chain.yaml")]) == 0
    first, second = tmp_path / "chain" / "stage-1-sft", tmp_path / "chain" / "stage-2-sft"
    assert json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"] == str(first.resolve())
    ids = torch.arange(3, 20)[None]
    with torch.no_grad():
        base = load_model(tiny_model_dir).eval()(ids).logits
        after_first = load_trained(first).eval()(ids).logits
        after_second = load_trained(second).eval()(ids).logits
    assert (after_first - base).abs().max() > 1e-2  # stage 1 moved the model: the check is not void
    assert torch.allclose(after_second, after_first, atol=1e-5)


def _adapter_chain(tmp_path: Path, model_dir: str, first: dict, second: dict) -> Path:
    import yaml

    recipe = {
        "model_name_or_path": model_dir,
        "dataset_name": "builtin:arith",
        "output_dir": str(tmp_path / "chain"),
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "save_strategy": "no",
        "gradient_checkpointing": False,
        "stages": [{"method": "sft", **first}, {"method": "sft", **second}],
    }
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(recipe))
    return tmp_path / "chain.yaml"


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.arange(3, 20)[None]).logits


def test_a_full_stage_after_a_lora_stage_trains_the_merged_model(tiny_model_dir, tmp_path):
    """Stage 1's LoRA comes merged into stage 2, whose every weight trains again (peft had frozen them: stage 2 used
    to stop at its first backward, nothing requiring a gradient)."""
    from trl_ext.models import load_model, load_trained

    lora = {"use_peft": True, "lora_r": 4, "lora_alpha": 8, "max_steps": 2, "learning_rate": 5e-2}
    config = _adapter_chain(tmp_path, tiny_model_dir, lora, {"max_steps": 1, "learning_rate": 1e-2})
    assert main(["train", "--config", str(config)]) == 0
    first, second = tmp_path / "chain" / "stage-1-sft", tmp_path / "chain" / "stage-2-sft"
    assert not (second / "adapter_config.json").exists() and (second / "model.safetensors").exists()
    merged = load_trained(first).state_dict()
    trained = load_model(str(second)).state_dict()
    moved = {name for name, value in trained.items() if not torch.equal(value, merged[name])}
    assert "model.layers.0.mlp.down_proj.weight" in moved and "model.norm.weight" in moved  # not only the LoRA targets


def test_an_unmergeable_adapter_is_trained_on_by_the_next_stage(tiny_model_dir, tmp_path):
    """LoRAMoE's gates depend on the input, so it cannot merge: a stage after it trains the same adapter on (at a
    learning rate too small to move anything it ends with stage 1's model; at a real one its tensors move)."""
    from trl_ext.models import load_model, load_trained

    moe = {"adapter": "loramoe:num_experts=2", "max_steps": 2, "learning_rate": 5e-2}
    config = _adapter_chain(tmp_path, tiny_model_dir, moe, {"max_steps": 1, "learning_rate": 1e-30})
    assert main(["train", "--config", str(config)]) == 0
    first, second = tmp_path / "chain" / "stage-1-sft", tmp_path / "chain" / "stage-2-sft"
    assert (second / "adapter_config.json").exists()
    base = _logits(load_model(tiny_model_dir))
    after_first = _logits(load_trained(first))
    assert (after_first - base).abs().max() > 1e-2
    assert torch.allclose(_logits(load_trained(second)), after_first, atol=1e-5)

    (tmp_path / "real").mkdir()
    config = _adapter_chain(tmp_path / "real", tiny_model_dir, moe, {"max_steps": 1, "learning_rate": 1e-2})
    assert main(["train", "--config", str(config)]) == 0
    stage1 = load_file(tmp_path / "real" / "chain" / "stage-1-sft" / "adapter_model.safetensors")
    stage2 = load_file(tmp_path / "real" / "chain" / "stage-2-sft" / "adapter_model.safetensors")
    assert stage1.keys() == stage2.keys()
    assert any(not torch.equal(stage1[key], stage2[key]) for key in stage1)  # the same adapter, trained on


def test_a_new_adapter_on_an_unmergeable_one_is_refused_before_the_stage_trains(tiny_model_dir, tmp_path, capsys):
    moe = {"adapter": "loramoe:num_experts=2", "max_steps": 1, "learning_rate": 5e-2}
    config = _adapter_chain(tmp_path, tiny_model_dir, moe, {"max_steps": 1, "use_peft": True, "lora_r": 4})
    assert main(["train", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "stage-1-sft holds a LoRAMoE adapter that cannot be merged" in error and "drop use_peft" in error
    assert (tmp_path / "chain" / "stage-1-sft" / "adapter_model.safetensors").exists()  # stage 1 kept
    assert not (tmp_path / "chain" / "stage-2-sft" / "adapter_model.safetensors").exists()


def test_a_prompt_learning_adapter_is_trained_on_by_the_next_stage(tiny_model_dir, tmp_path):
    """Prompt tuning has no weights to merge into: like LoRAMoE, a stage after it trains the same virtual-token
    embeddings on (they move), and the result still loads as that adapter."""
    from peft import PeftModel, PromptTuningConfig

    from trl_ext.models import load_trained

    PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM").save_pretrained(str(tmp_path / "prompt"))
    first = {"adapter": f"peft:config={tmp_path / 'prompt'}", "max_steps": 1, "learning_rate": 5e-2}
    config = _adapter_chain(tmp_path, tiny_model_dir, first, {"max_steps": 1, "learning_rate": 5e-2})
    assert main(["train", "--config", str(config)]) == 0
    stage1 = load_file(tmp_path / "chain" / "stage-1-sft" / "adapter_model.safetensors")
    stage2 = load_file(tmp_path / "chain" / "stage-2-sft" / "adapter_model.safetensors")
    assert stage1.keys() == stage2.keys() == {"prompt_embeddings"}
    assert not torch.equal(stage1["prompt_embeddings"], stage2["prompt_embeddings"])
    assert isinstance(load_trained(tmp_path / "chain" / "stage-2-sft"), PeftModel)
