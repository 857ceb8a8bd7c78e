"""LTAThinkerTrainer: SFTTrainer on a frozen base whose thought slots a trainable generator fills (card eq.):
L = w_sft L_sft + w_kl L_kl + w_con L_con, the SFT term from TRL's fused LM head (chunked per-token log-probs on the
thought-filled embeddings), L_kl and L_con (training only) from the generator's output H."""

from __future__ import annotations

import logging
import os

import torch
from transformers.utils import SAFE_WEIGHTS_NAME
from trl import SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from trl_ext.compat.models import drop_instance_forward
from trl_ext.compat.trainer import count_train_tokens, keep_columns, prepare_inputs, record_metric
from trl_ext.training.normalization import accumulation_divisor

from .config import LTAThinkerConfig
from .data import INDEX_COLUMNS, LTACollator, format_dataset
from .loss import reasoning_focus_infonce, semantic_alignment_kl, thought_variance
from .model import OFFICIAL_BASE_LORA, LTAThinkerModel, generator_parameter_count
from .paper import PAPER

logger = logging.getLogger(__name__)


class LTAThinkerTrainer(SFTTrainer):
    """Trains LTA-Thinker's thought generator (T + P) on a frozen base model; saves only the generator."""

    _name = "LTA-Thinker"
    _tag_names = ["trl", "sft", "trl-ext", "lta-thinker"]
    config_class = LTAThinkerConfig

    def __init__(
        self,
        model,
        args: LTAThinkerConfig | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *posargs,
        peft_config=None,
        **kwargs,
    ):
        if args is None:
            args = LTAThinkerConfig(output_dir="lta-thinker-output")
        if not isinstance(args, LTAThinkerConfig):
            raise TypeError(f"LTAThinkerTrainer needs an LTAThinkerConfig, got {type(args).__name__}")
        if peft_config is not None:
            raise ValueError(
                "LTAThinkerTrainer trains a thought generator on a frozen base: drop --use_peft (the official base "
                "LoRA is --train_base_lora true; compare against LoRA alone with `trl-ext train sft --use_peft`)."
            )
        if isinstance(model, str):
            from trl_ext.models import load_model

            model = load_model(model)
        if not isinstance(model, LTAThinkerModel):
            model = LTAThinkerModel.wrap(
                model,
                num_thought_tokens=args.num_thought_tokens,
                thought_token_ids=args.thought_token_ids,
                generator_heads=args.generator_heads,
                generator_ffn_dim=args.generator_ffn_dim,
                seed=args.seed,
                base_lora=OFFICIAL_BASE_LORA if args.train_base_lora else None,
            )
        elif bool(model.spec.base_lora) != args.train_base_lora:
            raise ValueError(
                f"the model {'has' if model.spec.base_lora else 'has no'} base LoRA but train_base_lora="
                f"{args.train_base_lora}"
            )
        elif model.num_thought_tokens != args.num_thought_tokens:
            raise ValueError(
                f"the model has {model.num_thought_tokens} thought slots but num_thought_tokens="
                f"{args.num_thought_tokens}"
            )
        if processing_class is None:
            from trl_ext.models import load_tokenizer

            processing_class = load_tokenizer(model.config.name_or_path)
        if processing_class.pad_token_id is None:
            raise ValueError("LTA-Thinker pads its extra columns with the tokenizer's pad token; it has none.")
        if args.ddp_find_unused_parameters is None:  # every generator parameter is used when K > 0
            args.ddp_find_unused_parameters = False
        ids = model.thought_token_ids
        train_dataset = format_dataset(train_dataset, processing_class, ids, with_steps=True)
        # Evaluation uses the inference layout: the thoughts cannot see gold steps there (card: no steps at inference)
        if isinstance(eval_dataset, dict):
            eval_dataset = {
                k: format_dataset(v, processing_class, ids, with_steps=False) for k, v in eval_dataset.items()
            }
        else:
            eval_dataset = format_dataset(eval_dataset, processing_class, ids, with_steps=False)
        if data_collator is None:
            data_collator = LTACollator(
                DataCollatorForLanguageModeling(pad_token_id=processing_class.pad_token_id),
                processing_class.pad_token_id,
            )
        super().__init__(model, args, data_collator, train_dataset, eval_dataset, processing_class, *posargs, **kwargs)
        # SFTTrainer patched the wrapper's forward with its fused head; the wrapper passes `fused_lm_head` on to the
        # base, which carries the fused head itself.
        drop_instance_forward(self.model)
        keep_columns(self, [*INDEX_COLUMNS])  # through remove_unused_columns, to the collator
        expected = generator_parameter_count(model.spec.hidden_size, model.spec.ffn_dim)
        if self.is_world_process_zero():
            base = "base frozen"
            if model.spec.base_lora:
                lora = model.num_trainable_parameters() - expected
                base = f"base frozen but a LoRA of {lora:,} (r={model.spec.base_lora['r']} on q_proj, v_proj)"
            print(
                f"lta-thinker: {model.num_trainable_parameters():,} trainable parameters (thought generator T + P: "
                f"5d^2 + 2df + f + 8d = {expected:,}); {base}; K = {model.num_thought_tokens} thought slots"
            )

    @property
    def _paper(self) -> dict[str, str | None]:
        return {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Only the thought generator (the base is frozen): `thought_generator.safetensors` + `lta_thinker.json`. A
        checkpoint also gets the same tensors as `model.safetensors` (wrapper names), the file Trainer's
        `resume_from_checkpoint` loads (non-strictly: the frozen base is not in it)."""
        output_dir = output_dir or self.args.output_dir
        model = self.accelerator.unwrap_model(self.model)
        state = model.trainable_state()  # a collective under ZeRO-3: every process calls it
        if self.is_world_process_zero():
            model.save_pretrained(output_dir, state)
            if _internal_call:
                from safetensors.torch import save_file

                save_file(state, os.path.join(output_dir, SAFE_WEIGHTS_NAME))
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
        self.accelerator.wait_for_everyone()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args = self.args
        mode = "train" if self.model.training else "eval"
        step_index = inputs.pop("q_and_step_index", None)
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        mask = outputs.label_mask
        per_token = -outputs.log_probs  # zero on ignored positions
        steps = accumulation_divisor(self, num_items_in_batch)  # the terms count once per optimizer step
        if args.sft_normalization == "official" or num_items_in_batch is None:
            sft = per_token.sum() / mask.sum().clamp(min=1)
            sft_scaled = sft / steps
        else:  # SFTTrainer's: token sum over the accumulation window, times the processes DDP averages over
            sft_scaled = per_token.sum() / torch.as_tensor(num_items_in_batch).clamp(min=1)
            if args.average_tokens_across_devices:
                sft_scaled = sft_scaled * self.accelerator.num_processes
            sft = per_token.sum() / mask.sum().clamp(min=1)
        loss = args.sft_weight * sft_scaled

        states = outputs.thought_states
        k = self.accelerator.unwrap_model(model).num_thought_tokens
        kl = con = torch.zeros((), device=per_token.device)
        con_acc = None
        if states is not None:
            index = inputs["thought_index"]
            question = step_index[:, 0]
            if mode == "train" and step_index is not None:
                # Card: L_kl (semantic alignment) and L_con (reasoning focus), per-micro-batch means
                kl = semantic_alignment_kl(states, question, index[:, 2], k)
                con, correct = reasoning_focus_infonce(
                    states, question, step_index[:, 1:], outputs.answer_embedding, args.temperature
                )
                con_acc = correct.float().mean()
                loss = loss + (args.kl_weight * kl + args.con_weight * con) / steps
            self._log("lta/thought_var", thought_variance(states, index[:, 2], k), mode)
        self._log("lta/sft_loss", sft, mode)
        self._log("lta/kl_loss", kl, mode)
        self._log("lta/con_loss", con, mode)
        if con_acc is not None:
            self._log("lta/con_acc", con_acc, mode)
        self._log_token_metrics(outputs, mode)
        if mode == "train":
            count_train_tokens(self, inputs)
        if return_outputs:
            return loss, outputs
        return loss

    def _log(self, name: str, value: torch.Tensor, mode: str) -> None:
        """The mean of a per-micro-batch value over the processes (a collective: every process logs the same names)."""
        value = self.accelerator.gather_for_metrics(value.detach().float().reshape(1)).mean()
        record_metric(self, mode, name, value.item())

    def _log_token_metrics(self, outputs, mode: str) -> None:
        """SFTTrainer's entropy and mean_token_accuracy, over the scored tokens of every process."""
        gather = self.accelerator.gather_for_metrics
        count = gather(outputs.label_mask.sum().reshape(1)).sum()
        entropy = gather(outputs.entropy.detach().sum().reshape(1)).sum()
        correct = gather(outputs.is_top1.sum().reshape(1)).sum()
        record_metric(self, mode, "entropy", (entropy / count).item() if count > 0 else 0.0)
        record_metric(self, mode, "mean_token_accuracy", (correct / count).item() if count > 0 else 0.0)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = prepare_inputs(self, inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
