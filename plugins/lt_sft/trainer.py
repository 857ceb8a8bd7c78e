"""LTSFTTrainer: Lottery-Ticket Sparse Fine-Tuning on SFTTrainer. Each phase is its own `SFTTrainer.train()` call,
so each gets a fresh optimizer and schedule (the official behaviour); the loss is SFTTrainer's, plus an optional L1
pull towards theta0. The sparse phase masks gradients with hooks on the parameters, so DDP reduces masked gradients
and clipping sees them as the official code's mask-after-backward does."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed
from trl import SFTTrainer

from trl_ext.adapters.sparse import DIFF_FILE, SparseDiff, global_top_k, per_tensor_top_k
from trl_ext.compat.trainer import record_metric
from trl_ext.training.normalization import accumulation_divisor
from trl_ext.training.sharding import engine_name

from .config import LTSFTConfig
from .paper import PAPER

logger = logging.getLogger(__name__)

STATE_FILE = "lt_sft_state.json"
FULL, SPARSE = 0, 1


def maskable_names(
    model: torch.nn.Module, maskable: str = "all-linear", freeze_norms: bool = True, freeze_lm_head: bool = False
) -> list[str]:
    """Names (as `named_parameters()` gives them, a tied weight once) of the tensors LT-SFT trains and may put in the
    diff: `all-linear` = every `nn.Linear`'s parameters but the output layer's; `all` = every parameter; otherwise a
    regex searched in the name. Normalisation weights (`freeze_norms`) and the LM head (`freeze_lm_head`) are left
    out whatever the pattern."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    linear_ids = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head for p in m.parameters()
    }
    norm_ids = {id(p) for m in model.modules() if "norm" in type(m).__name__.lower() for p in m.parameters()}
    names = []
    for name, p in model.named_parameters():
        if (freeze_norms and id(p) in norm_ids) or (freeze_lm_head and id(p) in head_ids):
            continue
        if maskable == "all-linear":
            keep = id(p) in linear_ids
        elif maskable == "all":
            keep = True
        else:
            keep = re.search(maskable, name) is not None
        if keep:
            names.append(name)
    return names


def budget(num_maskable: int, num_tunable: int | None, density: float) -> int:
    """K: `num_tunable`, else floor(density x maskable entries), at least 1 and at most the maskable entries."""
    k = num_tunable if num_tunable is not None else int(density * num_maskable)
    return max(1, min(k, num_maskable))


def l1_penalty(
    params: dict[str, torch.Tensor], theta0: dict[str, torch.Tensor], lam: float, num_params: int
) -> torch.Tensor:
    """The card's L1 term: (lambda / N) * sum over the tensors of sum |theta - theta0|, N every model parameter.
    theta0 is a detached copy, so the gradient is (lambda / N) sign(theta - theta0) (the official code's copy stays in
    the graph and its L1 gradient cancels to 0)."""
    total = sum((p - theta0[n].to(p.device, p.dtype)).abs().sum() for n, p in params.items())
    return (lam / num_params) * total


class LTSFTTrainer(SFTTrainer):
    """SFT of a sparse difference phi: full phase -> top-K selection -> rewind -> masked sparse phase."""

    _name = "LT-SFT"
    _tag_names = ["trl", "sft", "trl-ext", "lt-sft"]
    config_class = LTSFTConfig

    def __init__(self, model, args: LTSFTConfig | None = None, *posargs, peft_config=None, **kwargs):
        if args is None:
            args = LTSFTConfig(output_dir="lt-sft-output")
        if not isinstance(args, LTSFTConfig):
            raise TypeError(f"LTSFTTrainer needs an LTSFTConfig, got {type(args).__name__}")
        if peft_config is not None:
            raise ValueError(
                f"LT-SFT trains a sparse set of the model's own entries, not a {type(peft_config).__name__}: drop "
                "--use_peft / --adapter (scope=per_module gives per-module budgets)."
            )
        super().__init__(model, args, *posargs, **kwargs)
        policy = self.accelerator.unwrap_model(self.model)
        if hasattr(policy, "peft_config"):
            raise ValueError("LT-SFT trains the base model's entries: give it a model without a peft adapter.")
        if args.lang_diff_path:
            SparseDiff.load(args.lang_diff_path).apply(policy)  # theta0 is then theta_pre + phi_lang
        params = dict(policy.named_parameters())
        self.maskable = maskable_names(policy, args.maskable, args.freeze_norms, args.freeze_lm_head)
        if not self.maskable:
            raise ValueError(f"maskable={args.maskable!r} matches no parameter of {type(policy).__name__}.")
        keep = set(self.maskable)
        for name, p in params.items():
            p.requires_grad_(name in keep)
        self.num_params = sum(p.numel() for p in params.values())  # N: every parameter, a tied one once
        self.num_maskable = sum(params[n].numel() for n in self.maskable)
        self.num_tunable = budget(self.num_maskable, args.num_tunable, args.density)
        self._params = {n: params[n] for n in self.maskable}
        self._theta0: dict[str, torch.Tensor] | None = None
        self._mask: dict[str, torch.Tensor] | None = None
        self.phase: int | None = None
        self.iteration = 0
        self.num_selected = 0
        self.threshold: float | None = None
        self.phase_histories: list[list[dict[str, Any]]] = []
        # Flat positions chosen at each iteration, by tensor: K entries in all, kept for inspection and the state file
        self.selections: list[dict[str, torch.Tensor]] = []
        self.sparse_diff: SparseDiff | None = None
        for name, p in self._params.items():
            p.register_hook(self._masking_hook(name))
        if self.is_world_process_zero():
            print(
                f"lt_sft: K = {self.num_tunable:,} tunable entries of {self.num_maskable:,} maskable "
                f"({len(self.maskable)} tensors, maskable={args.maskable!r}); N = {self.num_params:,} model "
                f"parameters; scope={args.scope}, {args.n_iterations} iteration(s)",
                flush=True,
            )

    @property
    def _paper(self) -> dict[str, str | None]:
        return {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    def _masking_hook(self, name: str):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            if self._mask is None:
                return grad
            return grad.masked_fill(~self._mask[name], 0.0)

        return hook

    # --- the algorithm -----------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        if resume_from_checkpoint:
            raise ValueError(
                "LT-SFT does not resume from a checkpoint: a run is several train() calls (phases) whose checkpoints "
                "hold the weights but not theta0 or the mask. Start the run again."
            )
        self._refuse_engines()
        args = self.args
        saved = (args.max_steps, args.num_train_epochs, args.weight_decay, args.output_dir)
        k_per_iteration = self.num_tunable // args.n_iterations
        if k_per_iteration < 1:
            raise ValueError(f"K={self.num_tunable} is smaller than n_iterations={args.n_iterations}.")
        use_l1 = args.l1_full > 0 or args.l1_sparse > 0
        # theta0 lives on CPU unless the L1 term reads it every step (card: memory pitfall)
        self._theta0 = self._snapshot(device=None if use_l1 else "cpu")
        taken = {n: torch.zeros(p.shape, dtype=torch.bool) for n, p in self._params.items()}
        result = None
        try:
            for it in range(args.n_iterations):
                self.iteration = it
                start = self._theta0 if it == 0 else self._snapshot(device="cpu")
                self._run_phase(FULL, saved)
                selection = self._select(taken, k_per_iteration)
                taken = {n: taken[n] | selection.masks[n].cpu() for n in taken}
                self.selections.append(
                    {n: torch.nonzero(m.reshape(-1)).reshape(-1).cpu() for n, m in selection.masks.items() if m.any()}
                )
                self.num_selected = sum(int(m.sum()) for m in taken.values())
                self.threshold = selection.threshold
                if selection.count > k_per_iteration:
                    logger.warning(
                        "lt_sft: %d entries tie at the threshold %.3g: %d selected for k=%d (official rule).",
                        selection.count - k_per_iteration,
                        selection.threshold,
                        selection.count,
                        k_per_iteration,
                    )
                self._rewind(start)
                self._mask = {n: taken[n].to(p.device) for n, p in self._params.items()}
                result = self._run_phase(SPARSE, saved)
                self._mask = None
        finally:
            self._mask = None
            args.max_steps, args.num_train_epochs, args.weight_decay, args.output_dir = saved
            self.phase = None
        current = {n: p.detach() for n, p in self._params.items()}
        self.sparse_diff = SparseDiff.from_tensors(current, self._theta0, names=self.maskable)
        self._save_state(Path(args.output_dir))
        return result

    def _refuse_engines(self) -> None:
        engine = engine_name(self)
        if engine:
            raise ValueError(
                f"LTSFTTrainer cannot train under {engine}: it rewinds the parameters in place between phases, selects "
                "the top-K over whole tensors and masks gradients through hooks on the parameters, while the engine "
                "keeps its own flat (ZeRO-3 / FSDP: partitioned) copies of parameters and gradients. Use DDP "
                "(torchrun) or one process; the full phase needs the whole model on each process anyway."
            )

    def _run_phase(self, phase: int, saved: tuple) -> Any:
        """One phase as one `SFTTrainer.train()`: fresh optimizer and schedule, the phase's own length, the seed
        reset (the same data order as a fresh run), checkpoints in a folder of their own."""
        args = self.args
        self.phase = phase
        steps, epochs = (
            (args.full_ft_steps, args.full_ft_epochs)
            if phase == FULL
            else (args.sparse_ft_steps, args.sparse_ft_epochs)
        )
        args.max_steps, args.num_train_epochs = (-1, epochs) if epochs is not None else (steps, saved[1])
        # Masked entries must not move: no decay in the sparse phase (the official scripts use 0 throughout)
        args.weight_decay = saved[2] if phase == FULL else 0.0
        args.output_dir = str(Path(saved[3]) / f"lt_sft-it{self.iteration}-{'full' if phase == FULL else 'sparse'}")
        self.optimizer, self.lr_scheduler = None, None
        set_seed(args.seed)
        result = super().train()
        self.phase_histories.append(list(self.state.log_history))
        return result

    def _snapshot(self, device: str | None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {n: p.detach().to(device or p.device, copy=True) for n, p in self._params.items()}

    @torch.no_grad()
    def _rewind(self, start: dict[str, torch.Tensor]) -> None:
        for n, p in self._params.items():
            p.copy_(start[n])

    @torch.no_grad()
    def _select(self, taken: dict[str, torch.Tensor], k: int):
        """The k entries not yet chosen with the largest |theta - theta0| (global or per tensor). Every process holds
        the same weights under DDP; the global threshold is still taken from process 0, so all choose alike."""
        deltas = {n: (p.detach() - self._theta0[n].to(p.device)).abs() for n, p in self._params.items()}
        if self.args.scope == "per_module":
            return per_tensor_top_k(deltas, k / self.num_maskable, taken)
        threshold = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            from trl_ext.adapters.sparse import kth_largest

            value = torch.tensor([kth_largest(deltas, k, taken)], dtype=torch.float64)
            torch.distributed.broadcast(value, src=0)
            threshold = value.item()
        return global_top_k(deltas, k, taken, threshold)

    # --- loss and metrics --------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        lam = 0.0 if self.phase is None else (self.args.l1_full if self.phase == FULL else self.args.l1_sparse)
        if lam == 0.0 or not model.training:
            return result
        loss, outputs = result if return_outputs else (result, None)
        l1 = l1_penalty(self._params, self._theta0, lam, self.num_params)
        record_metric(self, "train", "lt_sft/l1_loss", l1.item())
        loss = loss + l1 / accumulation_divisor(self, num_items_in_batch)  # once per optimizer step (card)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.phase is not None and "loss" in logs:
            logs["lt_sft/phase"] = float(self.phase)
            logs["lt_sft/iteration"] = float(self.iteration)
            if self.phase == SPARSE:
                logs["lt_sft/num_selected"] = float(self.num_selected)
                if self.threshold is not None:
                    logs["lt_sft/threshold"] = float(self.threshold)
                logs["lt_sft/max_abs_masked_delta"] = self.max_abs_masked_delta()
        super().log(logs, start_time)

    @torch.no_grad()
    def max_abs_masked_delta(self) -> float:
        """The largest |theta - theta0| outside the mask: 0 exactly while the sparse phase keeps its invariant."""
        if self._mask is None or self._theta0 is None:
            return 0.0
        worst = 0.0
        for n, p in self._params.items():
            delta = (p.detach() - self._theta0[n].to(p.device)).abs().masked_fill(self._mask[n], 0.0)
            worst = max(worst, delta.max().item())
        return worst

    def _save_state(self, out: Path) -> None:
        """`sparse_diff.safetensors` (phi: indices + values per tensor) and `lt_sft_state.json`, from process 0."""
        if not self.is_world_process_zero():
            return
        self.sparse_diff.save(out / DIFF_FILE)
        state = {
            "phase": "done",
            "iterations": self.args.n_iterations,
            "num_tunable": self.num_tunable,
            "num_selected": self.num_selected,
            "selected_per_iteration": [sum(v.numel() for v in s.values()) for s in self.selections],
            "threshold": self.threshold,
            "diff_entries": len(self.sparse_diff),
            "num_maskable": self.num_maskable,
            "num_params": self.num_params,
            "maskable": self.maskable,
            "scope": self.args.scope,
            "lang_diff_path": self.args.lang_diff_path,
        }
        (out / STATE_FILE).write_text(json.dumps(state, indent=2))
