"""past: the card's tests 1-6 by hand (skill arithmetic, exclusions and tied weights, lambda = 0, LoRA = dense with
`cat` exact and `linear` not, the cosine report, architecture mismatches), the callbacks on hand-set weights, the
reward, data and subsets, and the recipe: the shipped file equals `past_recipe`'s defaults, refinement's stage plan,
and a real run on a tiny model through the CLI checked against theta_final = theta_sft_T + lambda v from the saved
stage folders."""

import copy
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerState

from trl_ext.cli import main
from trl_ext.run.recipe import load_recipe, stages
from trl_ext.testing import tiny_model
from trl_ext_plugins.past import (
    PaSTOptions,
    SkillExtractCallback,
    SkillInjectCallback,
    SkillVector,
    SkillVectorError,
    build_past_facts,
    cosine_report,
    inject_lora_skill,
    lora_skill_vector,
    mean_abs_cosine,
    normalized_exact_match,
    past_recipe,
)
from trl_ext_plugins.past.transforms import Subset

ROOT = Path(__file__).resolve().parents[2]


def _filled(value: float, **kwargs) -> torch.nn.Module:
    model = tiny_model(**kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def _is_embedding(name: str) -> bool:
    return "embed_tokens" in name or "lm_head" in name


# --- card test 1: arithmetic


def test_lambda_two_adds_twice_the_skill_and_remove_restores_exactly():
    v = SkillVector.from_models(_filled(1.5), _filled(1.0))
    target = _filled(2.0)
    v.apply(target, lam=2.0)
    for name, p in target.named_parameters():
        expected = 2.0 if _is_embedding(name) else 3.0  # 2.0 + 2 * (1.5 - 1.0)
        assert torch.equal(p, torch.full_like(p, expected)), name
    v.remove(target, lam=2.0)
    for name, p in target.named_parameters():
        assert torch.equal(p, torch.full_like(p, 2.0)), name


# --- card test 2: exclusions and tied weights


def test_embeddings_and_lm_head_are_excluded_by_default():
    v = SkillVector.from_models(_filled(1.5), _filled(1.0))
    assert v.deltas and not any(_is_embedding(n) for n in v.deltas)
    assert set(v.deltas) == {n for n, _ in tiny_model().named_parameters() if not _is_embedding(n)}


def test_a_tied_embedding_is_updated_once():
    rl, sft = _filled(1.5, tie_word_embeddings=True), _filled(1.0, tie_word_embeddings=True)
    v = SkillVector.from_models(rl, sft, exclude=())
    target = _filled(2.0, tie_word_embeddings=True)
    assert target.lm_head.weight is target.model.embed_tokens.weight
    v.apply(target, lam=1.0)
    assert torch.equal(target.lm_head.weight, torch.full_like(target.lm_head.weight, 2.5))  # not 3.0


def test_include_keeps_only_the_named_parameters():
    v = SkillVector.from_models(_filled(1.5), _filled(1.0), include=("q_proj",))
    assert v.deltas and all("q_proj" in n for n in v.deltas)


# --- card test 3: lambda = 0


def test_lambda_zero_leaves_the_state_dict_bit_identical():
    rl, sft, target = tiny_model(seed=1), tiny_model(seed=2), tiny_model(seed=3)
    with torch.no_grad():
        target.model.layers[0].mlp.up_proj.weight[0, 0] = -0.0
    before = copy.deepcopy(target.state_dict())
    SkillVector.from_models(rl, sft, exclude=()).apply(target, lam=0.0)
    after = target.state_dict()
    for name, value in before.items():
        assert torch.equal(value.view(torch.int32), after[name].view(torch.int32)), name


# --- card test 4: LoRA = dense; cat exact, linear not


def _lora(base: torch.nn.Module, names=("default",), seed: int = 0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config, adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, config)
    torch.manual_seed(seed + 1)
    with torch.no_grad():  # random A and B in every adapter (B = 0 at init would make every delta zero)
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.normal_(0, 0.2)
    return model


def _hand_delta(peft_model, adapter: str) -> dict[str, torch.Tensor]:
    """B A * alpha / r of each LoRA layer, by the base parameter's name, without peft's helpers."""
    out = {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and adapter in module.lora_A:
            a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
            out[name.removeprefix("base_model.model.") + ".weight"] = (b @ a) * (8 / 4)
    return out


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_skill_vector_is_the_adapters_merged_delta():
    peft_model = _lora(tiny_model(seed=4))
    v = lora_skill_vector(peft_model)
    hand = _hand_delta(peft_model, "default")
    assert set(v.deltas) == set(hand) and len(hand) == 4  # q_proj and v_proj in 2 layers
    for name, delta in hand.items():
        torch.testing.assert_close(v.deltas[name], delta, rtol=0, atol=1e-7)


@pytest.mark.parametrize("lam", [0.5, 1.5])
def test_lora_adapter_scaled_by_lambda_equals_the_dense_delta(lam):
    ids = torch.tensor([[5, 17, 42, 8, 99, 3]])
    peft_model = _lora(tiny_model(seed=4))
    dense = tiny_model(seed=4)
    with torch.no_grad():  # theta + lam * v by hand
        params = dict(dense.named_parameters())
        for name, delta in _hand_delta(peft_model, "default").items():
            params[name] += lam * delta
    inject_lora_skill(peft_model, "default", lam=lam, adapter_name="skill")
    torch.testing.assert_close(_logits(peft_model, ids), _logits(dense, ids), rtol=0, atol=1e-5)
    dense_path = tiny_model(seed=4)
    lora_skill_vector(peft_model, "default").apply(dense_path, lam)
    torch.testing.assert_close(_logits(dense_path, ids), _logits(dense, ids), rtol=0, atol=1e-5)


def test_cat_combination_is_exact_and_linear_is_not():
    ids = torch.tensor([[5, 17, 42, 8, 99, 3]])
    lam = 1.5
    peft_model = _lora(tiny_model(seed=5), names=("target", "skill"), seed=7)
    dense = tiny_model(seed=5)
    with torch.no_grad():  # theta_0 + dW_target + lam * dW_skill by hand
        params = dict(dense.named_parameters())
        for adapter, weight in (("target", 1.0), ("skill", lam)):
            for name, delta in _hand_delta(peft_model, adapter).items():
                params[name] += weight * delta
    inject_lora_skill(peft_model, "skill", lam=lam, target_adapter="target", adapter_name="past")
    torch.testing.assert_close(_logits(peft_model, ids), _logits(dense, ids), rtol=0, atol=1e-5)
    peft_model.add_weighted_adapter(["target", "skill"], [1.0, lam], "lin", combination_type="linear")
    peft_model.set_adapter("lin")
    assert (_logits(peft_model, ids) - _logits(dense, ids)).abs().max() > 1e-3


# --- card test 5: cosine report


def test_cosine_report_orthogonal_parallel_and_zero():
    sft = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([1.0, 2.0]), "c": torch.tensor([0.0, 0.0])}
    rl = {"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([2.0, 4.0]), "c": torch.tensor([3.0, 1.0])}
    report = cosine_report(sft, rl)
    assert report["a"] == 0.0
    assert report["b"] == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(report["c"])
    assert mean_abs_cosine(report) == pytest.approx(0.5, abs=1e-12)  # (0 + 1) / 2, the nan skipped
    anti = cosine_report({"x": torch.tensor([1.0, 1.0])}, {"x": torch.tensor([-1.0, -1.0])})
    assert anti["x"] == pytest.approx(-1.0) and mean_abs_cosine(anti) == pytest.approx(1.0)
    assert math.isnan(mean_abs_cosine({"c": math.nan}))


def test_norm_report_by_hand():
    v = SkillVector({"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([[1.0, 2.0], [2.0, 4.0]])})
    assert v.norm_report() == {"a": 5.0, "b": 5.0}
    assert v.norm() == pytest.approx(math.sqrt(50))


# --- card test 6: mismatched architectures


def test_different_vocab_sizes_are_refused_with_the_parameter_named():
    with pytest.raises(SkillVectorError, match=r"(embed_tokens|lm_head).*shape \(320, 32\).*\(300, 32\)"):
        SkillVector.from_models(tiny_model(vocab_size=320), tiny_model(vocab_size=300), exclude=())


def test_applying_to_another_architecture_is_refused():
    v = SkillVector.from_models(_filled(1.5), _filled(1.0))
    with pytest.raises(SkillVectorError, match="shape"):
        v.apply(tiny_model(hidden_size=64))
    with pytest.raises(SkillVectorError, match="no parameter"):
        v.apply(tiny_model(num_layers=1))


# --- files


def test_save_and_load_round_trip_in_float32(tmp_path):
    v = SkillVector.from_models(tiny_model(seed=1), tiny_model(seed=2))
    path = v.save(tmp_path / "v.safetensors")
    loaded = SkillVector.load(path)
    assert set(loaded.deltas) == set(v.deltas)
    assert all(torch.equal(loaded.deltas[n], d) and d.dtype == torch.float32 for n, d in v.deltas.items())
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(SkillVectorError, match="not a skill vector"):
        SkillVector.load(tmp_path / "other.safetensors")


# --- callbacks on hand-set weights


def _args(tmp_path, stage="stage-2-grpo"):
    return SimpleNamespace(output_dir=str(tmp_path / stage))


def _trained(model, value):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_extract_saves_end_minus_start_plus_previous(tmp_path):
    SkillVector(
        {n: torch.full_like(p, 0.25) for n, p in tiny_model().named_parameters() if not _is_embedding(n)}
    ).save(tmp_path / "prev.safetensors")
    callback = SkillExtractCallback(path="v.safetensors", previous="prev.safetensors")
    model, state = _filled(1.0), TrainerState()
    callback.on_train_begin(_args(tmp_path), state, None, model=model)
    _trained(model, 1.5)
    callback.on_train_end(_args(tmp_path), state, None, model=model)
    v = SkillVector.load(tmp_path / "v.safetensors")
    assert all(torch.equal(d, torch.full_like(d, 0.75)) for d in v.deltas.values())  # 0.5 + 0.25
    entry = json.loads((tmp_path / "past_state.json").read_text())["extract:stage-2-grpo"]
    assert entry["past/skill_norm"] == pytest.approx(v.norm())


def test_a_resumed_extraction_starts_from_the_stages_input_model_not_the_checkpoint(tmp_path):
    _filled(1.0).save_pretrained(tmp_path / "sft")
    model, state = _filled(1.25), TrainerState()  # the checkpoint's weights, halfway
    model.name_or_path = str(tmp_path / "sft")
    state.global_step = 3
    callback = SkillExtractCallback()
    callback.on_train_begin(_args(tmp_path), state, None, model=model)
    _trained(model, 1.5)
    callback.on_train_end(_args(tmp_path), state, None, model=model)
    assert all(torch.equal(d, torch.full_like(d, 0.5)) for d in callback.skill.deltas.values())


def test_extract_logs_the_orthogonality_of_the_sft_and_rl_deltas(tmp_path):
    base = tiny_model(seed=0)
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir)
    sft = tiny_model(seed=0)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in sft.parameters():
            p += 0.1 * torch.randn_like(p)
    callback = SkillExtractCallback(base_model_name_or_path=str(base_dir))
    state = TrainerState()
    start = {n: p.detach().clone() for n, p in sft.named_parameters()}
    callback.on_train_begin(_args(tmp_path), state, None, model=sft)
    with torch.no_grad():  # the RL update: the SFT delta itself in one matrix (cos 1), minus it in another (cos -1)
        layer = sft.model.layers[0]
        layer.self_attn.q_proj.weight += (
            layer.self_attn.q_proj.weight - dict(base.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
        )
        layer.self_attn.k_proj.weight -= (
            start["model.layers.0.self_attn.k_proj.weight"]
            - dict(base.named_parameters())["model.layers.0.self_attn.k_proj.weight"]
        )
    callback.on_train_end(_args(tmp_path), state, None, model=sft)
    # only two matrices moved in RL; the other deltas are zero (nan, skipped): mean |cos| = (1 + 1) / 2
    assert callback.figures["past/mean_abs_cos"] == pytest.approx(1.0, abs=1e-5)
    assert state.log_history[-1]["past/mean_abs_cos"] == callback.figures["past/mean_abs_cos"]


def test_inject_adds_lambda_v_and_refuses_a_missing_vector_or_a_peft_stage(tmp_path):
    SkillVector.from_models(_filled(1.5), _filled(1.0)).save(tmp_path / "skill_vector.safetensors")
    callback = SkillInjectCallback(lam=1.5, evaluate=False)
    model, state = _filled(2.0), TrainerState()
    args = _args(tmp_path, "stage-3-sft")
    callback.on_train_begin(args, state, None, model=model)
    callback.on_train_end(args, state, None, model=model)
    for name, p in model.named_parameters():
        assert torch.equal(p, torch.full_like(p, 2.0 if _is_embedding(name) else 2.75)), name
    with pytest.raises(FileNotFoundError, match="no skill vector"):
        SkillInjectCallback(skill_vector="none.safetensors").on_train_begin(args, state, None, model=_filled(2.0))
    with pytest.raises(SkillVectorError, match="peft adapter"):
        callback.on_train_begin(args, state, None, model=_lora(tiny_model()))


def test_inject_refuses_a_target_that_does_not_start_from_the_vectors_base(tmp_path):
    SkillVector.from_models(_filled(1.5), _filled(1.0)).save(tmp_path / "skill_vector.safetensors")
    for name in ("a", "b"):
        tiny_model().save_pretrained(tmp_path / name)
    path = str((tmp_path / "skill_vector.safetensors").resolve())
    (tmp_path / "past_state.json").write_text(
        json.dumps({"extract:stage-2-grpo": {"skill_vector": path, "base_model": str(tmp_path / "a")}})
    )
    model = _filled(2.0)
    args = _args(tmp_path, "stage-3-sft")
    model.name_or_path = str(tmp_path / "a")
    SkillInjectCallback().on_train_begin(args, TrainerState(), None, model=model)
    model.name_or_path = str(tmp_path / "b")
    with pytest.raises(SkillVectorError, match="share theta_0"):
        SkillInjectCallback().on_train_begin(args, TrainerState(), None, model=model)


# --- reward, data, subsets


def test_normalized_exact_match():
    reward = normalized_exact_match
    completions = ["Porto.", "the porto", "  PORTO ", "Alice lives in Porto.", "Lisbon", None]
    assert reward(prompts=[None] * 6, completions=completions, answer=["Porto"] * 6) == [1, 1, 1, 0, 0, 0]
    half = reward.from_options(partial=0.5)
    more = ["Porto", "Alice lives in Porto.", "Alice lives in Portofino.", "Lisbon"]
    assert half(prompts=[None] * 4, completions=more, answer=["Porto"] * 4) == [1.0, 0.5, 0.0, 0.0]
    assert half.__name__ != reward.__name__


def test_normalized_exact_match_unusable_gold_scores_none_never_raises():
    answers = ["Porto", None, 5, ["Porto"], "", "  The. "]
    n = len(answers)
    for reward in (normalized_exact_match, normalized_exact_match.from_options(partial=0.5)):
        out = reward(prompts=["p"] * n, completions=["Porto"] * n, completion_ids=[[1]] * n, answer=answers)
        assert out == [1.0] + [None] * (n - 1)
    # an empty completion is no answer to an empty gold
    assert normalized_exact_match(prompts=["p"], completions=[""], answer=[None]) == [None]


def test_past_facts_source_and_target_are_disjoint_and_aligned():
    source_docs, source_qa = build_past_facts("source_docs"), build_past_facts("source_qa")
    target_qa = build_past_facts("target_qa")
    names = {row["prompt"][0]["content"].split("does ")[1].split(" live")[0] for row in source_qa["train"]}
    target_names = {row["prompt"][0]["content"].split("does ")[1].split(" live")[0] for row in target_qa["train"]}
    assert len(names) == 32 and len(target_names) == 16 and not names & target_names
    for doc, qa in zip(source_docs["train"], source_qa["train"], strict=True):
        name = qa["prompt"][0]["content"].split("does ")[1].split(" live")[0]
        assert doc["text"].startswith(f"{name} lives in {qa['answer']}.")
    assert build_past_facts("target_qa")["test"]["answer"] == target_qa["test"]["answer"]  # deterministic


def test_subset_k_of_k_partitions_the_rows():
    from datasets import Dataset

    rows = Dataset.from_list([{"i": i} for i in range(10)])
    parts = [Subset(part=k, parts=3)(rows)["i"] for k in (1, 2, 3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError, match="part=4"):
        Subset(part=4, parts=3)


# --- the recipe


def test_the_shipped_recipe_is_past_recipe_at_its_defaults():
    shipped = load_recipe(ROOT / "examples" / "recipes" / "past.yaml")
    assert (
        ROOT / "examples" / "recipes" / "past.yaml"
    ).resolve() == ROOT / "plugins" / "past" / "recipes" / "past.yaml"
    assert stages(shipped) == stages(past_recipe(PaSTOptions()))  # each stage's flags, top-level keys merged in
    assert [s["method"] for s in shipped["stages"]] == ["sft", "grpo", "sft"]


def test_refinement_rounds_chain_the_vectors():
    recipe = past_recipe(PaSTOptions(refine_rounds=2, lam=0.5))
    stages = recipe["stages"]
    assert [s["method"] for s in stages] == ["sft", "grpo", "sft", "grpo", "sft"]
    assert [s["transforms"][0]["part"] for s in stages[:4]] == [1, 1, 2, 2]
    assert stages[1]["callbacks"][0]["path"] == "skill_vector_round1.safetensors"
    assert stages[2]["model_name_or_path"] == "smollm2-135m"  # round 2's SFT starts from theta_0 ...
    assert stages[2]["callbacks"][0] == {  # ... and its GRPO from theta_sft_2 + v_1
        "name": "past_inject",
        "skill_vector": "skill_vector_round1.safetensors",
        "lam": 1.0,
        "evaluate": False,
    }
    assert stages[3]["callbacks"][0]["previous"] == "skill_vector_round1.safetensors"
    assert stages[3]["callbacks"][0]["path"] == "skill_vector.safetensors"
    assert stages[4]["callbacks"][0]["lam"] == 0.5 and "transforms" not in stages[4]
    with pytest.raises(ValueError, match="refine_rounds"):
        PaSTOptions(refine_rounds=0)


@pytest.mark.parametrize("rounds", [1, 2])
def test_every_stage_of_the_built_recipe_parses_and_builds_its_components(rounds, tiny_model_dir, tmp_path):
    """A dry run: each stage's flags, transforms, rewards and callbacks are looked up and built, nothing trained."""
    from trl_ext.run.arguments import parse_stage
    from trl_ext.run.recipe import checked_recipe

    recipe = past_recipe(PaSTOptions(base_model=tiny_model_dir, refine_rounds=rounds, output_dir=str(tmp_path)))
    plan = stages(checked_recipe(recipe, "past"))
    parsed = []
    for i, values in enumerate(plan):
        values = dict(values)
        parsed.append(parse_stage(values.pop("method"), [], values, first=i == 0, in_recipe=True))
    assert [s.method.name for s in parsed] == ["sft", "grpo"] * rounds + ["sft"]
    assert [type(record.build(**options)).__name__ for record, options in parsed[-1].callbacks] == [
        "SkillInjectCallback"
    ]
    assert [record.name for record, _ in parsed[1].rewards] == ["normalized_exact_match"]
    assert parsed[1].rewards[0][1] == {"partial": 0.5}
    if rounds > 1:
        assert [record.name for record, _ in parsed[2].transforms] == ["past_subset"]


def test_the_recipe_gives_theta_sft_t_plus_lambda_v_on_a_tiny_model(tiny_model_dir, tmp_path, monkeypatch):
    seen = {}
    original = SkillInjectCallback.on_train_end

    def recording(self, args, state, control, model=None, **kwargs):
        seen["theta_sft_T"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return original(self, args, state, control, model=model, **kwargs)

    monkeypatch.setattr(SkillInjectCallback, "on_train_end", recording)
    # A random tiny model never answers a city, so exact match alone gives GRPO no signal: add a reward that varies.
    (tmp_path / "past_test_rewards.py").write_text(
        "def varied(completions, **kwargs):\n    return [float(len(str(c)) % 3) for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = load_recipe(ROOT / "examples" / "recipes" / "past.yaml")
    recipe.update(model_name_or_path=tiny_model_dir, output_dir=str(tmp_path / "run"), logging_steps=1)
    for stage in recipe["stages"]:
        stage.update(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2)
        stage.pop("num_train_epochs", None)
        if stage["method"] == "grpo":
            stage.update(num_generations=2, max_completion_length=4, learning_rate=1e-3, temperature=1.5)
            stage["rewards"] = "normalized_exact_match:partial=0.5,past_test_rewards.varied"
        else:
            stage.update(max_length=32)
    recipe["stages"][1]["callbacks"][0]["base_model_name_or_path"] = tiny_model_dir
    recipe["stages"][2]["model_name_or_path"] = tiny_model_dir
    recipe["stages"][2]["callbacks"][0].update(lam=2.0, num_eval=4, max_new_tokens=4)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(path)]) == 0

    root = tmp_path / "run"
    sft_s = load_file(str(root / "stage-1-sft" / "model.safetensors"))
    rl_s = load_file(str(root / "stage-2-grpo" / "model.safetensors"))
    final = load_file(str(root / "stage-3-sft" / "model.safetensors"))
    v = SkillVector.load(root / "skill_vector.safetensors")
    assert set(v.deltas) == {n for n in rl_s if not _is_embedding(n)}
    assert any(float(d.abs().max()) > 0 for d in v.deltas.values())  # the GRPO stage moved the weights
    for name, delta in v.deltas.items():
        assert torch.equal(delta, rl_s[name] - sft_s[name]), name
    for name, before in seen["theta_sft_T"].items():
        expected = before if _is_embedding(name) else before + 2.0 * (rl_s[name] - sft_s[name])
        assert torch.equal(final[name], expected), name
    state = json.loads((root / "past_state.json").read_text())
    inject = state["inject:stage-3-sft"]
    assert inject["past/lam"] == 2.0
    assert {"past/target_acc_before", "past/target_acc_after", "past/target_contains_after"} <= set(inject)
    assert {"past/target_doc_nll_before", "past/target_doc_nll_after"} <= set(inject)
    assert 0.0 <= state["extract:stage-2-grpo"]["past/mean_abs_cos"] <= 1.0


def test_the_module_cli_extracts_and_injects_saved_checkpoints(tmp_path, capsys):
    from trl_ext.testing import tiny_tokenizer
    from trl_ext_plugins.past.__main__ import main as past_main

    for name, value in (("sft", 1.0), ("rl", 1.25), ("target", 2.0)):
        _filled(value).save_pretrained(tmp_path / name)
        tiny_tokenizer().save_pretrained(tmp_path / name)
    out = tmp_path / "v.safetensors"
    assert past_main(["extract", "--rl", str(tmp_path / "rl"), "--sft", str(tmp_path / "sft"), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tensors"] > 0
    args = ["inject", "--model", str(tmp_path / "target"), "--skill", str(out), "--lam", "2", "--out"]
    assert past_main([*args, str(tmp_path / "final")]) == 0
    final = load_file(str(tmp_path / "final" / "model.safetensors"))
    for name, value in final.items():
        assert torch.equal(value, torch.full_like(value, 2.0 if _is_embedding(name) else 2.5)), name
    assert (tmp_path / "final" / "tokenizer_config.json").exists()


# --- two processes


@pytest.mark.slow
def test_two_processes_ddp_and_zero3_equal_one(tmp_path, monkeypatch):
    """Extraction (a gather of every parameter) and injection (a write into ZeRO-3 shards) on 2 processes give the
    same step, injected update and skill vector as one process accumulating the same global batch."""
    from trl_ext.testing import assert_same_step, run_layout

    script = ROOT / "tests" / "distributed" / "past_step.py"
    reference = run_layout(script, tmp_path / "accumulated.json", 2, 2, "none")
    assert any(k.startswith("v:") for k in reference["update"])
    ddp = run_layout(script, tmp_path / "ddp.json", 2, 1, "none", nproc=2)
    assert_same_step(reference, ddp, name="past on 2 processes (ddp)")
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    zero3 = run_layout(script, tmp_path / "zero3.json", 2, 1, "zero3", nproc=2)
    assert_same_step(reference, zero3, name="past on 2 processes (zero3)")
