"""UDSSFTTrainer: SFTTrainer that trains each micro-batch on the K rows UDS selects (arXiv 2510.16882).

Per training micro-batch (card steps 1-7): a no-grad backbone forward gives the last hidden states; each row gets
intra = ||L_i||_* and a sketch z_i of its logits (`scoring.UDSScorer`, no full logits); inter = mean distance of z_i
to the memory; the top-K rows of intra + alpha * inter are handed to `SFTTrainer.training_step` with
`num_items_in_batch=None`, so SFT's loss is the token mean over the selected rows and the Trainer divides it by the
accumulation steps, as the official code does; their sketches enter the memory. The memory (slots, pointer, count,
the sketch's seed and sizes) and the recent selections are saved into each checkpoint, one file per process, and
restored on resume.

Several processes (DDP, DeepSpeed ZeRO-1/2/3, FSDP2) are refused before training unless `uds_per_process_selection`
is set: then each process selects from its own micro-batch with its own memory, as the official code does, which is
not the 1-process result for the same global batch (see README). Under an engine that holds parameters in shards
(DeepSpeed ZeRO-3, FSDP2) the scoring pass runs as the wrapped model's forward (`run_inside_forward`, so the engine's
hooks gather each decoder layer as the backbone reaches it) with the LM head gathered whole (`gathered_lm_head` under
ZeRO-3; FSDP2 holds it unsharded after the final norm's forward, or `LMHead.of` all-gathers it), and the cached Gram
factor is keyed on the head parameter object and its version counter, never on a gathered copy
(`head_cache_key`). Every process scores every micro-batch in the same order, so the gathers match up. Under DDP and
ZeRO-1/2 the scoring forward calls the backbone directly, as on one process.
"""

from __future__ import annotations

import logging
import os
import time

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from trl_ext.compat.models import backbone
from trl_ext.compat.sharding import gathered_lm_head, run_inside_forward
from trl_ext.compat.trainer import prepare_inputs
from trl_ext.losses.token_loss import LMHead
from trl_ext.training.sft import FusedSFTTrainer
from trl_ext.training.sharding import full_shape, is_sharded

from .config import UDSConfig
from .paper import PAPER
from .scoring import SketchMemory, UDSScorer, inter_scores, top_k

logger = logging.getLogger(__name__)
STATE_FILE = "trl_ext_uds_rank{rank}.pt"
HISTORY = 4096  # selections kept in the state (for inspection and resume checks)


def scored_rows(inputs: dict, include_prompt_rows: bool) -> torch.Tensor:
    """[b, T] bool: the positions whose logits UDS scores. With prompt rows: every position with attention_mask 1;
    without: the positions t whose next token (labels[t + 1]) is trained on."""
    if include_prompt_rows:
        mask = inputs.get("attention_mask")
        return torch.ones_like(inputs["input_ids"], dtype=torch.bool) if mask is None else mask.bool()
    labels = inputs["labels"]
    rows = torch.zeros_like(labels, dtype=torch.bool)
    rows[:, :-1] = labels[:, 1:] != -100
    return rows


def select_rows(inputs: dict, indices: torch.Tensor) -> dict:
    """The micro-batch restricted to `indices` (sorted: the rows keep their order), every [b, ...] tensor sliced."""
    b = inputs["input_ids"].shape[0]
    order = indices.sort().values
    return {
        key: value[order.to(value.device)]
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == b
        else value
        for key, value in inputs.items()
    }


def refuse_several_processes(world_size: int, per_process_selection: bool) -> None:
    """UDS selects K rows of one micro-batch against one memory: several processes would each select on their own,
    which differs from one process on the same global batch. Refused before training unless asked for."""
    if world_size > 1 and not per_process_selection:
        raise ValueError(
            f"uds selects within each process's micro-batch against that process's memory: under {world_size} "
            "processes it would not give the 1-process result for the same global batch. Pass "
            "--uds_per_process_selection true to select per process as the official code does, or train on one "
            "process."
        )


class UDSSFTTrainer(FusedSFTTrainer):
    """UDS online batch selection (arXiv 2510.16882) on TRL's SFTTrainer; its loss is SFTTrainer's."""

    config_class = UDSConfig
    _name = "UDS"
    _tag_names = ["trl", "sft", "uds", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: UDSConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args: UDSConfig = self.args
        self.uds_memory = SketchMemory(args.uds_memory_size, args.uds_r_time * args.uds_r_vocab)
        self.uds_history: list[list] = []  # [global_step, micro-batch within the step, selected rows]
        self._scorer: UDSScorer | None = None
        self._last_step, self._micro = -1, 0
        self._warned_long = False
        # Set by the training loop; a direct call (tests, `trl-ext bench`) divides by the configured value
        if not hasattr(self, "current_gradient_accumulation_steps"):
            self.current_gradient_accumulation_steps = args.gradient_accumulation_steps
        self.add_callback(_UDSStateCallback(self))

    # --- selection ---------------------------------------------------------------------------------------------------
    @property
    def scorer(self) -> UDSScorer:
        if self._scorer is None:
            args: UDSConfig = self.args
            vocab = self.head_rows()
            self._scorer = UDSScorer(
                args.sketch_rows, vocab, args.uds_r_time, args.uds_r_vocab, args.uds_seed, args.uds_exact_path
            )
        return self._scorer

    def head_rows(self) -> int:
        """V, the LM head's output rows, without gathering it (ZeRO-3 holds it empty outside its forward)."""
        return int(full_shape(self._policy.get_output_embeddings().weight)[0])

    def head_cache_key(self) -> tuple | None:
        """What the scorer's cached Gram factor is valid for: the LM head's parameter objects and their version
        counters while none is trained (a frozen head, e.g. LoRA), None (recompute) when one is. Read from the module's
        own parameters, which persist across steps, never from the values gathered for this step: a gathered copy is a
        new tensor each step (FSDP2's `full_tensor`; ZeRO-3 swaps the storage of the same object), so its address
        and version say nothing about a change. The objects are kept referenced so their ids are not reused."""
        params = list(self._policy.get_output_embeddings().parameters())
        if any(p.requires_grad for p in params):
            return None
        self._head_params = params
        return tuple((id(p), p._version) for p in params)

    def uds_scores(self, inputs: dict, model=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(intra [b], inter [b], sketches [b, r1 r2]) of a prepared micro-batch, from one no-grad forward in eval
        mode (no dropout, no RNG drawn: the training forward that follows is the one plain SFT would run). `model`:
        the wrapped model (DeepSpeed engine, FSDP2 root) whose forward the scoring runs as under a sharded engine;
        default the trainer's."""
        args: UDSConfig = self.args
        rows = scored_rows(inputs, args.uds_include_prompt_rows)
        if not self._warned_long and int(rows.sum(1).max()) > args.sketch_rows:
            logger.warning(
                "UDS: rows longer than max_length=%d are scored on their first %d positions.",
                args.sketch_rows,
                args.sketch_rows,
            )
            self._warned_long = True
        policy = self._policy
        was_training = policy.training
        policy.eval()
        try:
            with torch.no_grad():
                if is_sharded(policy):
                    wrapper = self.model_wrapped if model is None else model
                    unwrapped = self.accelerator.unwrap_model(wrapper)
                    scores = run_inside_forward(wrapper, unwrapped, self._score_in_forward, inputs, rows)
                else:
                    scores = self._score_in_forward(inputs, rows)
        finally:
            policy.train(was_training)
        inter = inter_scores(scores.sketches, self.uds_memory.filled())
        return scores.intra, inter, scores.sketches

    def _score_in_forward(self, inputs: dict, rows: torch.Tensor):
        """The scoring pass: the decoder stack (never the root model again: inside an engine's forward that would
        nest it), then the scores from the LM head read whole (gathered under ZeRO-3)."""
        hidden = backbone(self._policy)(**self.forward_inputs(inputs)).last_hidden_state
        module = self._policy.get_output_embeddings()
        with gathered_lm_head(module.weight, getattr(module, "bias", None)):
            head = LMHead.of(self._policy)  # FSDP2: all-gathered here if the head is still a sharded DTensor
            return self.scorer.score(hidden, rows.to(hidden.device), head, head_key=self.head_cache_key())

    def select(self, inputs: dict, model=None) -> torch.Tensor:
        """Indices of the rows to train on (highest score first); pushes their sketches into the memory. `model`: the
        wrapped model (see `uds_scores`)."""
        args: UDSConfig = self.args
        b = inputs["input_ids"].shape[0]
        k = min(args.uds_k, b)
        if args.uds_random:
            gen = self.micro_step_generator("uds_random")
            return torch.randperm(b, generator=gen)[:k]
        start = time.perf_counter()
        intra, inter, sketches = self.uds_scores(inputs, model)
        chosen = top_k(intra + args.uds_alpha * inter, k)
        self.uds_memory.push(sketches[chosen])
        self.log_metric("uds/intra_mean", intra.mean().item())
        self.log_metric("uds/inter_mean", inter.mean().item())
        self.log_metric("uds/score_time_s", time.perf_counter() - start)
        return chosen

    def training_step(self, model, inputs, num_items_in_batch=None):
        args: UDSConfig = self.args
        b = inputs["input_ids"].shape[0]
        step = self.state.global_step
        self._micro = self._micro + 1 if step == self._last_step else 0
        self._last_step = step
        if step >= args.uds_start_step and min(args.uds_k, b) < b:
            inputs = prepare_inputs(self, inputs)
            chosen = self.select(inputs, model)
            self.uds_history = [*self.uds_history, [step, self._micro, chosen.tolist()]][-HISTORY:]
            inputs = select_rows(inputs, chosen)
        self.log_metric("uds/selected_frac", inputs["input_ids"].shape[0] / b)
        self.log_metric("uds/memory_fill", self.uds_memory.count / self.uds_memory.size)
        # None: SFT's loss is the token mean of the selected rows, and the Trainer divides it by the accumulation
        # steps (the official code's normalisation; the count of the whole micro-batch would scale it by ~K/b)
        return super().training_step(model, inputs, num_items_in_batch=None)

    # --- checkpoint state --------------------------------------------------------------------------------------------
    def uds_state(self) -> dict:
        return {
            "memory": self.uds_memory.state_dict(),
            "history": self.uds_history,
            "sketch": self._sketch_settings(),
        }

    def _sketch_settings(self) -> dict:
        args: UDSConfig = self.args
        return {
            "seed": args.uds_seed,
            "r_time": args.uds_r_time,
            "r_vocab": args.uds_r_vocab,
            "t_max": args.sketch_rows,
            "vocab": self.head_rows(),
            "memory_size": args.uds_memory_size,
        }

    def state_path(self, folder: str) -> str:
        return os.path.join(folder, STATE_FILE.format(rank=self.accelerator.process_index))

    def load_uds_state(self, folder: str) -> bool:
        """Restore this process's memory and selections from a checkpoint folder; False when it holds none."""
        path = self.state_path(folder)
        if not os.path.isfile(path):
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["sketch"] != self._sketch_settings():
            raise ValueError(
                f"{path} was saved with UDS sketch settings {state['sketch']}, this run has "
                f"{self._sketch_settings()}: the saved memory's sketches are not comparable. Resume with the same "
                "uds_seed, uds_r_time, uds_r_vocab, max_length, model vocabulary and uds_memory_size."
            )
        self.uds_memory.load_state_dict(state["memory"])
        self.uds_history = [list(h) for h in state["history"]]
        return True

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        refuse_several_processes(self.args.world_size, self.args.uds_per_process_selection)
        folder = resume_from_checkpoint
        if folder is True:
            folder = get_last_checkpoint(self.args.output_dir)
        if isinstance(folder, str):
            if self.load_uds_state(folder):
                logger.info("UDS: memory restored from %s (%d sketches).", folder, self.uds_memory.count)
            else:
                logger.warning("UDS: %s holds no UDS memory; resuming with an empty memory.", folder)
        return super().train(resume_from_checkpoint, *args, **kwargs)


class _UDSStateCallback(TrainerCallback):
    """Writes each process's UDS memory into every checkpoint (before trl-ext seals it)."""

    def __init__(self, trainer: UDSSFTTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            torch.save(self.trainer.uds_state(), self.trainer.state_path(folder))
