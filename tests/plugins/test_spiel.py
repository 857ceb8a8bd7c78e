"""SpIEL (arXiv 2401.16405) on peft's supertuning tuner: the card's drop/grow hand case, the invariants after every
selection, the schedule, the Adam seeding, density 1 = full fine-tuning of the targets, save/load and merge, the
trainable count by the official budget, checkpoint/resume of the moving support, refusal of ZeRO-3, the CLI, and
2 processes (DDP) equal to 1."""

import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from peft import PeftModel

from trl_ext.testing import interrupted_and_resumed, logged, run_layout, tiny_model, tiny_tokenizer, uneven_rows
from trl_ext_plugins.spiel.callback import STATE_FILE
from trl_ext_plugins.spiel.config import SpIELConfig
from trl_ext_plugins.spiel.optimizer import SpIELAdamW
from trl_ext_plugins.spiel.selection import Accumulator, Schedule, Selector, drop_and_grow, reselection_rate
from trl_ext_plugins.spiel.sparse_linear import SparseDeltaLinear, use_sparse_delta_linear
from trl_ext_plugins.spiel.support import spiel_budget, spiel_layers, wrap_spiel
from trl_ext_plugins.spiel.trainer import SpIELTrainer

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17, 18]])


def _config(tmp_path, **kwargs) -> SpIELConfig:
    args = dict(
        per_device_train_batch_size=2,
        max_steps=6,
        reselection_steps=3,
        selection_accumulation_steps=1,
        learning_rate=1e-2,
        warmup_steps=0,
        lr_scheduler_type="constant",
        density=0.05,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        seed=0,
        bf16=False,
        gradient_checkpointing=False,
        shuffle_dataset=False,
    )
    return SpIELConfig(output_dir=str(tmp_path), **{**args, **kwargs})


def _trainer(tmp_path, model=None, **kwargs) -> SpIELTrainer:
    return SpIELTrainer(
        model=tiny_model() if model is None else model,
        args=_config(tmp_path, **kwargs),
        train_dataset=Dataset.from_list(uneven_rows()),
        processing_class=tiny_tokenizer(),
    )


def _support(model) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {
        name: (layer.supertuning_indices["default"].clone(), layer.supertuning_values["default"].detach().clone())
        for name, layer in spiel_layers(model).items()
    }


# --- card test 1: the drop/grow hand case --------------------------------------------------------------------------
def test_drop_and_grow_hand_case():
    indices = torch.tensor([0, 3, 5, 7], dtype=torch.int32)
    values = torch.tensor([0.5, -0.01, 0.2, 0.0])
    regrowth = drop_and_grow(indices, values, torch.tensor([9, 3, 12]), torch.tensor([0.9, 0.8, 0.1]), rate=0.5)
    # m = 2: drop idx 7 (|v| 0) and idx 3 (0.01); grow 9 and 3; 3 is both, so it keeps its slot and value
    assert indices.tolist() == [0, 3, 5, 9]
    assert torch.equal(values, torch.tensor([0.5, -0.01, 0.2, 0.0]))
    assert regrowth.slots.tolist() == [3] and regrowth.candidate_positions.tolist() == [0]


def test_drop_and_grow_skips_candidates_still_active():
    # candidate 0 is active and not dropped: only 8 may grow, into the slot of smallest |v| (idx 2)
    indices = torch.tensor([0, 1, 2], dtype=torch.int64)
    values = torch.tensor([0.3, 0.2, 0.1])
    regrowth = drop_and_grow(indices, values, torch.tensor([0, 8]), torch.tensor([5.0, 1.0]), rate=0.67)
    # m = floor(3 * 0.67) = 2 drops (idx 2, idx 1); one free candidate (8): the drop list is cut to one slot
    assert indices.tolist() == [0, 1, 8] and values.tolist() == pytest.approx([0.3, 0.2, 0.0])
    assert regrowth.slots.tolist() == [2]


# --- card test 3: the schedule -------------------------------------------------------------------------------------
def test_schedule_and_rates():
    schedule = Schedule(reselection_steps=20, selection_accumulation_steps=5, total_steps=100)
    assert schedule.selection_steps() == [5, 25, 45, 65, 85]
    assert reselection_rate(5, schedule) == 1.0  # the random initial support is only a placeholder
    assert reselection_rate(25, schedule) == pytest.approx(0.2 * 0.75)
    assert reselection_rate(45, schedule) == pytest.approx(0.2 * 0.55)
    # official cosine: no p = 1 first selection (0.1988 at t = 5 of 100)
    assert reselection_rate(5, schedule, policy="cosine") == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.05)))
    assert round(reselection_rate(5, schedule, policy="cosine"), 4) == 0.1988


# --- card test 4: Adam seeding of a regrown slot -------------------------------------------------------------------
def test_adam_seeding_hand_case():
    delta = torch.nn.Parameter(torch.zeros(3))
    optimizer = SpIELAdamW([delta], lr=1e-3, betas=(0.9, 0.999))
    selector = Selector({}, "default")
    layer = _OneLayer(indices=[0, 1, 2], values=[0.0, 0.5, 0.4], param=delta)
    selector.layers = {"l": layer}
    # g_sum = 2.0 over count = 2 backward calls, one micro-batch per step: age 2
    acc = Accumulator(torch.tensor([7]), torch.tensor([2.0]), torch.tensor([2.5]), count=2)
    selector.select(0.34, {"l": acc}, optimizer, grad_accum_steps=1)
    assert layer.supertuning_indices["default"].tolist() == [7, 1, 2]
    state = optimizer.state[delta]
    assert state["exp_avg"][0].item() == pytest.approx(1.0 * (1 - 0.9**2)) == pytest.approx(0.19)
    assert state["exp_avg_sq"][0].item() == pytest.approx(2.5 / 2 * (1 - 0.998001))
    assert state["age"][0].item() == 2.0 and state["age"][1:].tolist() == [0.0, 0.0]
    # with 2 micro-batches per optimizer step the same 2 calls are one step: age 1
    selector.select(0.34, {"l": Accumulator(torch.tensor([9]), torch.tensor([2.0]), torch.tensor([2.5]), 2)},
                    optimizer, grad_accum_steps=2)  # fmt: skip
    assert state["age"][0].item() == 1.0 and state["exp_avg"][0].item() == pytest.approx(1.0 * 0.1)


class _OneLayer:
    """The two attributes of a supertuning layer the selector's drop/regrow reads."""

    def __init__(self, indices, values, param):
        self.supertuning_indices = {"default": torch.tensor(indices, dtype=torch.int32)}
        with torch.no_grad():
            param.copy_(torch.tensor(values))
        self.supertuning_values = {"default": param}


def test_per_entry_age_is_adamw_when_ages_agree():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5))
    b = torch.nn.Parameter(a.detach().clone())
    ours = SpIELAdamW([a], lr=0.1, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.3)
    theirs = torch.optim.AdamW([b], lr=0.1, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.3)
    for _ in range(4):
        grad = torch.randn(5)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    assert torch.allclose(a, b, atol=1e-6)


# --- budget and trainable count ------------------------------------------------------------------------------------
def test_budget_is_density_of_all_parameters_by_hand(capsys):
    model = tiny_model()  # hidden 32, FFN 64, 2 layers, k/v 16 wide, vocab 320, untied head
    per_layer = {
        "q": 32 * 32,
        "k": 32 * 16,
        "v": 32 * 16,
        "o": 32 * 32,
        "gate": 64 * 32,
        "up": 64 * 32,
        "down": 64 * 32,
    }
    targets = 2 * sum(per_layer.values())
    total = 2 * 320 * 32 + targets + (2 * 2 + 1) * 32  # embeddings + head, the linears, 5 norms
    assert (targets, total) == (18432, 39072)
    tunable = int(0.05 * total)  # 1953: the official budget is a density of the whole model
    expected = 2 * sum(n * tunable // targets for n in per_layer.values())  # 2 * (108+54+54+108+217*3) = 1950
    budget = spiel_budget(model, density=0.05)
    assert (budget.total, budget.targets, budget.tunable, budget.trainable) == (total, targets, tunable, expected)
    assert budget.sparsity == pytest.approx(1 - tunable / targets, abs=1e-12)  # ~ 1 - 0.05 * 2.12, not 1 - density
    wrapped = wrap_spiel(model, density=0.05, seed=0)
    assert sum(p.numel() for p in wrapped.parameters() if p.requires_grad) == expected == 1950
    assert "spiel: 1,950 trainable deltas" in capsys.readouterr().out


def test_smollm2_budget_on_meta():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)  # fmt: skip
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    budget = spiel_budget(model, density=0.01)
    assert budget.total / budget.targets == pytest.approx(1.267, abs=5e-4)
    # per layer: floor(T n / sum_n) for q/o (576x576), k/v (192x576), gate/up/down (1536x576)
    t, n = 1_345_150, 106_168_320
    assert budget.tunable == t and budget.targets == n
    assert budget.trainable == 30 * (2 * (331776 * t // n) + 2 * (110592 * t // n) + 3 * (884736 * t // n))
    assert budget.trainable == 1_345_050


def test_random_initial_support_and_identity():
    model = tiny_model()
    with torch.no_grad():
        base = model(IDS).logits
    wrapped = wrap_spiel(model, density=0.05, seed=3)
    with torch.no_grad():
        assert torch.equal(wrapped(IDS).logits, base)  # zero deltas
    for layer in spiel_layers(wrapped).values():
        idx = layer.supertuning_indices["default"]
        assert idx.dtype == torch.int32 and idx.unique().numel() == idx.numel()
    magnitude = spiel_layers(wrapped)["base_model.model.model.layers.0.mlp.up_proj"]
    top = magnitude.get_base_layer().weight.abs().flatten().topk(magnitude.supertuning_indices["default"].numel())
    assert set(top.indices.tolist()) != set(magnitude.supertuning_indices["default"].tolist())  # not peft's magnitude


# --- the composed weight W + scatter(idx, v) is not kept from forward to backward ----------------------------------
def _supertuning_pair(dtype=torch.float64):
    """A peft supertuning MLP with nonzero deltas, and a copy whose layers are SparseDeltaLinear."""
    import copy

    from peft import SupertuningConfig, get_peft_model

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4, bias=False)).to(dtype)
    peft_model = get_peft_model(mlp, SupertuningConfig(target_modules=["0", "2"], sparsity=0.7, init_weights=False))
    lean = copy.deepcopy(peft_model)
    assert use_sparse_delta_linear(lean) == 2
    return peft_model, lean


def test_sparse_delta_linear_equals_peft_forward_and_gradients():
    peft_model, lean = _supertuning_pair()
    x = torch.randn(3, 2, 6, dtype=torch.float64)
    outputs, grads = [], []
    for model in (peft_model, lean):  # peft's own scatter-add forward is the reference
        inputs = x.clone().requires_grad_()
        out = model(inputs)
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append([inputs.grad] + [p.grad for p in model.parameters() if p.requires_grad])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-12)
    assert len(grads[1]) == 3  # x and the two layers' deltas
    for a, b in zip(grads[0], grads[1], strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_sparse_delta_linear_keeps_no_composed_weight_for_backward():
    peft_model, lean = _supertuning_pair(torch.float32)
    sizes = {m.get_base_layer().weight.numel() for m in spiel_layers(peft_model).values()}  # 30, 20
    weights = {m.get_base_layer().weight.data_ptr() for m in spiel_layers(peft_model).values()}
    weights |= {m.get_base_layer().weight.data_ptr() for m in spiel_layers(lean).values()}

    def weight_copies(model) -> int:
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            model(torch.randn(3, 6, requires_grad=True)).sum()  # activations of 18 and 15 numbers: no weight's size
        return sum(t.numel() in sizes and t.data_ptr() not in weights for t in saved)

    assert weight_copies(peft_model) == 2  # peft keeps each composed weight (the old peak)
    assert weight_copies(lean) == 0  # only x and references to the frozen weights


def test_sparse_delta_linear_under_autocast_matches_peft():
    peft_model, lean = _supertuning_pair(torch.float32)
    x = torch.randn(3, 6)
    grads = []
    for model in (peft_model, lean):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.dtype == torch.bfloat16
        out.float().square().sum().backward()
        grads.append([p.grad for p in model.parameters() if p.requires_grad])
    for a, b in zip(grads[0], grads[1], strict=True):
        assert a.dtype == b.dtype == torch.float32 and torch.allclose(a, b, rtol=2e-2, atol=2e-2)


def test_wrap_spiel_uses_the_lean_layer_and_peft_falls_back_when_merged():
    wrapped = wrap_spiel(tiny_model(), density=0.05, seed=3)
    layers = spiel_layers(wrapped)
    assert layers and all(type(layer) is SparseDeltaLinear for layer in layers.values())
    with torch.no_grad():
        for layer in layers.values():
            layer.supertuning_values["default"].normal_(std=0.01)
        unmerged = wrapped(IDS).logits
        wrapped.base_model.merge_adapter()  # the merged weight through peft's own forward
        assert torch.allclose(wrapped(IDS).logits, unmerged, atol=1e-5)


# --- card test 2: invariants after every selection; metrics --------------------------------------------------------
def test_invariants_after_every_selection(tmp_path):
    trainer = _trainer(tmp_path, max_steps=6)
    model = trainer.model
    checks = []

    def check(*args, **kwargs):
        x = torch.randn(3, 32)
        for layer in spiel_layers(model).values():
            idx = layer.supertuning_indices["default"].long()
            v = layer.supertuning_values["default"].detach()
            weight = layer.get_base_layer().weight.detach()
            assert idx.unique().numel() == idx.numel() == v.numel() and int(idx.max()) < weight.numel()
            by_hand = weight.clone().flatten()
            by_hand[idx] += v
            if layer.in_features == 32:
                with torch.no_grad():
                    assert torch.allclose(layer(x), x @ by_hand.view_as(weight).T, atol=1e-6)
        checks.append(1)

    original = trainer.spiel.selector.select

    def select(*args, **kwargs):
        metrics = original(*args, **kwargs)
        check()
        return metrics

    trainer.spiel.selector.select = select
    before = _support(model)
    trainer.train()
    assert len(checks) == 2  # selections at t = 1 (p = 1) and t = 4 (S=3, A=1, 6 steps)
    after = _support(model)
    moved = sum((~torch.isin(after[n][0], before[n][0])).sum().item() for n in before)
    assert moved > 0.5 * sum(v[0].numel() for v in before.values())  # p = 1 replaced most of the random support
    rates = logged(trainer, "spiel/rate")
    assert rates and max(rates.values()) == 1.0
    assert set(logged(trainer, "spiel/num_active").values()) == {1950.0}
    assert logged(trainer, "spiel/replaced_frac") and logged(trainer, "spiel/mean_abs_delta")
    assert not trainer.spiel.selector._handles  # no hook left after the run


def test_no_reselection_keeps_the_random_support(tmp_path):
    trainer = _trainer(tmp_path, reselection_steps=0, max_steps=4)
    before = _support(trainer.model)
    trainer.train()
    after = _support(trainer.model)
    assert all(torch.equal(before[n][0], after[n][0]) for n in before)
    assert any(not torch.equal(before[n][1], after[n][1]) for n in before)


# --- card test 5: density 1, no reselection = full fine-tuning of the targets --------------------------------------
def test_density_one_equals_full_finetuning_of_the_targets():
    from trl_ext_plugins.spiel.support import DEFAULT_TARGETS, target_linears

    full = tiny_model()
    for p in full.parameters():
        p.requires_grad_(False)
    targets = target_linears(full, DEFAULT_TARGETS)
    for linear in targets.values():
        linear.weight.requires_grad_(True)
    sparse = wrap_spiel(tiny_model(), density=1.0, seed=0)
    assert sum(p.numel() for p in sparse.parameters() if p.requires_grad) == sum(
        m.weight.numel() for m in targets.values()
    )
    # no weight decay: SpIEL decays the deltas (towards the pretrained weight), full fine-tuning the whole weight
    kwargs = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    opt_full = torch.optim.AdamW([m.weight for m in targets.values()], **kwargs)
    opt_sparse = SpIELAdamW([p for p in sparse.parameters() if p.requires_grad], **kwargs)
    for step in range(4):
        ids = torch.randint(0, 300, (2, 9), generator=torch.Generator().manual_seed(step))
        for model, opt in ((full, opt_full), (sparse, opt_sparse)):
            model(ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
    layers = spiel_layers(sparse)
    for name, linear in targets.items():
        layer = layers["base_model.model." + name]
        effective = layer.get_base_layer().weight.detach().clone().flatten()
        effective[layer.supertuning_indices["default"].long()] += layer.supertuning_values["default"].detach()
        assert torch.allclose(effective.view_as(linear.weight), linear.weight, atol=1e-5), name
    with torch.no_grad():
        assert torch.allclose(full(IDS).logits, sparse(IDS).logits, atol=1e-5)


# --- card test 6: save/load; merge ---------------------------------------------------------------------------------
def test_save_load_and_merge_after_regrowth(tmp_path):
    trainer = _trainer(tmp_path / "run", max_steps=5)
    trainer.train()
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(IDS).logits
    model.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(tiny_model(), tmp_path / "adapter").eval()  # plain peft: a native tuner
    assert loaded.peft_config["default"].save_precomputed_indices
    original, restored = _support(model), _support(loaded)
    assert original.keys() == restored.keys()
    for name in original:
        assert torch.equal(original[name][0], restored[name][0]) and torch.equal(original[name][1], restored[name][1])
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, logits)
        merged = loaded.merge_and_unload()
        assert (merged(IDS).logits - logits).abs().max() < 1e-5
    assert not any("supertuning" in n for n, _ in merged.named_parameters())


# --- checkpoint/resume: the moved support and an open selection phase survive ---------------------------------------
def test_resume_in_an_open_selection_phase_equals_an_unbroken_run(tmp_path):
    def make(folder):
        return _trainer(folder, max_steps=6, save_strategy="steps", save_steps=3)

    # S=3, A=1: selections at t = 1 and 4; the phase for t = 4 opens at t = 2, so checkpoint-3 holds it open
    full, cut, resumed = interrupted_and_resumed(make, tmp_path, stop_step=3)
    assert (tmp_path / "cut" / "checkpoint-3" / STATE_FILE).exists()
    saved = torch.load(tmp_path / "cut" / "checkpoint-3" / STATE_FILE, weights_only=True)
    assert saved["selecting"] and saved["accumulators"]
    a, b = _support(full.model), _support(resumed.model)
    for name in a:
        assert torch.equal(a[name][0], b[name][0]), name
        assert torch.allclose(a[name][1], b[name][1], atol=1e-6), name
    assert logged(resumed, "spiel/rate") == logged(full, "spiel/rate")
    assert logged(resumed, "spiel/replaced_frac") == pytest.approx(logged(full, "spiel/replaced_frac"))


# --- refusals and config --------------------------------------------------------------------------------------------
def test_refuses_zero3_before_training(tmp_path):
    from trl_ext_plugins.spiel.callback import SpIELCallback

    class Args:
        deepspeed = {"zero_optimization": {"stage": 3}}
        deepspeed_plugin = None

    class Trainer:
        args = Args()

    with pytest.raises(ValueError, match="DeepSpeed ZeRO-3 is not supported"):
        SpIELCallback().bind(Trainer())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"selection": "sm3"}, "SM3 optimizer"),
        ({"selection_accumulation_steps": 19}, "selection_accumulation_steps"),
        ({"density": 0.0}, "density"),
        ({"delta_dtype": "bfloat16"}, "float32"),
    ],
)
def test_config_validation(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpIELConfig(output_dir=str(tmp_path), **kwargs)


# --- CLI -----------------------------------------------------------------------------------------------------------
def test_cli_train_spiel_and_sft_with_adapter_and_callback(tiny_model_dir, tmp_path, capsys):
    from trl_ext.cli import main

    flags = ["--max_steps", "3", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no",
             "--logging_steps", "1", "--model_name_or_path", tiny_model_dir]  # fmt: skip
    out = tmp_path / "spiel"
    code = main(["train", "spiel", "--output_dir", str(out), "--density", "0.05", "--reselection_steps", "3",
                 "--selection_accumulation_steps", "1"] + flags)  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "spiel: 1,950 trainable deltas" in printed and "'spiel/rate'" in printed
    assert (out / "adapter_model.safetensors").exists()

    out = tmp_path / "sft"
    code = main(["train", "sft", "--output_dir", str(out), "--adapter", "spiel:density=0.05",
                 "--callbacks", "spiel:reselection_steps=3:selection_accumulation_steps=1"] + flags)  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "spiel: 1,950 trainable deltas" in printed and "'spiel/replaced_frac'" in printed


def test_info_prints_the_budget(capsys):
    from trl_ext.cli import main

    assert main(["info", "spiel"]) == 0
    out = capsys.readouterr().out
    assert "1,345,050 on SmolLM2-135M" in out and "floor(T * n / sum_n)" in out


# --- 2 processes ---------------------------------------------------------------------------------------------------
SCRIPT = Path(__file__).parents[1] / "distributed" / "spiel_step.py"


@pytest.mark.slow
def test_two_processes_ddp_equal_one(tmp_path):
    """5 SpIEL steps with two drop/regrows (t = 1 at p = 1, t = 4) on a global batch of 4: 2 processes of 2 rows end
    with the same support, deltas and losses as 1 process of 4 (candidate gradients averaged over processes).

    Up to rounding, and rounding differs by CPU: the support is a set (regrowth may list it in another order), a
    candidate tied with the threshold to rounding may swap with its neighbour, and Adam amplifies rounding in deltas
    whose gradient is near its eps (one CPU: 1e-5 of the largest delta, another: 6e-3 in relative L2, 12% at one
    delta regrown at t = 4, with losses equal to 2.5e-6). A process that missed the candidate averaging selects a
    different support at t = 1 (p = 1 replaces 89% of it) and trains on its own rows' losses."""
    reference = run_layout(SCRIPT, tmp_path / "one.json", 4, 1)
    ddp = run_layout(SCRIPT, tmp_path / "ddp.json", 2, 1, nproc=2)
    assert reference["indices"].keys() == ddp["indices"].keys()
    support = sum(len(indices) for indices in reference["indices"].values())
    swapped = sum(len(set(i) ^ set(ddp["indices"][name])) for name, i in reference["indices"].items())
    assert swapped <= 0.01 * support, f"{swapped} of {support} support entries differ"
    assert reference["replaced"] == pytest.approx(ddp["replaced"], rel=1e-2) and len(reference["replaced"]) == 2
    largest = max(abs(v) for u in reference["values"].values() for v in u)
    assert largest > 1e-4
    gap = norm = 0.0
    for name, values in reference["values"].items():
        at_index = dict(zip(ddp["indices"][name], ddp["values"][name], strict=True))
        for index, value in zip(reference["indices"][name], values, strict=True):
            if index in at_index:
                gap, norm = gap + (value - at_index[index]) ** 2, norm + value**2
    assert (gap / norm) ** 0.5 < 2e-2, f"deltas differ by {(gap / norm) ** 0.5:.3g} in relative L2"
    assert reference["losses"] == pytest.approx(ddp["losses"], rel=1e-5)
