"""LTAThinkerModel: a frozen causal LM plus the trainable thought generator (block T and projection P).

The generator reads the assistant sequence's input embeddings (question, gold steps in training, then K thought
placeholders with distinct prior embeddings) and outputs H; rows a0..a1 of H overwrite rows b0..b1 of the base
input's embeddings, and the base runs on those `inputs_embeds`. `fused_lm_head=True` is passed through to the base
(patched with TRL's `add_fused_lm_head`), so training scores tokens in chunks and never builds (B, T, V) logits.
Only T, P (and the frozen prior table when the vocabulary has no reserved ids) are saved:
`thought_generator.safetensors` beside `lta_thinker.json`. With the official optional `train_base_lora`, the base
also carries a LoRA (the official r=16, alpha 32, dropout 0.1 on q_proj and v_proj), trained with the generator and
saved in the same file under `base.`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trl_ext.training.sharding import full_parameters

WEIGHTS_NAME = "thought_generator.safetensors"
CONFIG_NAME = "lta_thinker.json"
PRIOR = "thought_prior"
# The official code's LoRA for its optional `tune_base_model` flag (llm_model.py), in peft's LoraConfig fields
OFFICIAL_BASE_LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}


@dataclass
class ThoughtGeneratorSpec:
    """What rebuilds a saved generator onto its base model."""

    num_thought_tokens: int
    thought_token_ids: list[int]
    hidden_size: int
    ffn_dim: int
    num_heads: int
    eps: float
    vocab_rows: int  # the base's embedding rows: ids from here on are read from the prior table
    base_model_name_or_path: str | None = None
    base_lora: dict[str, Any] | None = None  # LoraConfig fields of a LoRA trained on the base (train_base_lora)


class ThoughtGenerator(nn.Module):
    """T: one post-norm Transformer encoder layer (bidirectional self-attention with a key padding mask, FFN
    d -> f -> d with ReLU, RMSNorm after each residual, dropout 0), then P: a d -> d linear with bias.
    Trainable parameters: 4(d^2 + d) + (2df + f + d) + 2d + (d^2 + d) = 5d^2 + 2df + f + 8d."""

    def __init__(self, hidden_size: int, ffn_dim: int, num_heads: int, eps: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"generator_heads={num_heads} must divide the base's hidden size {hidden_size}.")
        self.num_heads = num_heads
        # Separate q/k/v/o linears (not nn.MultiheadAttention, whose forward reads its out_proj's weight without
        # calling it, which ZeRO-3 would leave partitioned).
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(hidden_size, hidden_size) for _ in range(4))
        self.attn_norm = nn.RMSNorm(hidden_size, eps=eps)
        self.up = nn.Linear(hidden_size, ffn_dim)
        self.down = nn.Linear(ffn_dim, hidden_size)
        self.ffn_norm = nn.RMSNorm(hidden_size, eps=eps)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = embeds.shape
        heads = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, n, heads, d // heads).transpose(1, 2)

        keep = attention_mask.bool()[:, None, None, :]  # key padding mask
        attn = F.scaled_dot_product_attention(
            split(self.q_proj(embeds)), split(self.k_proj(embeds)), split(self.v_proj(embeds)), attn_mask=keep
        )
        h = self.attn_norm(embeds + self.o_proj(attn.transpose(1, 2).reshape(b, n, d)))
        h = self.ffn_norm(h + self.down(F.relu(self.up(h))))
        return self.proj(h)


def generator_parameter_count(hidden_size: int, ffn_dim: int) -> int:
    """The card's trainable count: T (attention 4(d^2+d), FFN 2df+f+d, two RMSNorms 2d) plus P (d^2+d)."""
    d, f = hidden_size, ffn_dim
    return 5 * d * d + 2 * d * f + f + 8 * d


class LTAThinkerModel(nn.Module):
    """A frozen causal LM (or one with a trainable LoRA: `spec.base_lora`) whose K thought slots are filled by a
    trainable `ThoughtGenerator`."""

    # Trainer passes `num_items_in_batch` to compute_loss and leaves the accumulation scaling to it.
    accepts_loss_kwargs = True

    def __init__(self, base: nn.Module, spec: ThoughtGeneratorSpec, prior: torch.Tensor | None = None):
        super().__init__()
        self.base = base
        self.spec = spec
        base.requires_grad_(False)
        if spec.base_lora:
            from peft import LoraConfig, inject_adapter_in_model

            # in place (the base stays a transformers model): only the LoRA matrices train
            inject_adapter_in_model(LoraConfig(bias="none", **spec.base_lora), base)
        _add_fused_head(base)
        self.generator = ThoughtGenerator(spec.hidden_size, spec.ffn_dim, spec.num_heads, spec.eps).float()
        extra = [i - spec.vocab_rows for i in spec.thought_token_ids if i >= spec.vocab_rows]
        if extra and prior is None:
            raise ValueError("thought ids past the vocabulary need a prior table")
        if prior is not None:
            self.register_buffer(PRIOR, prior.detach().clone().float())

    # --- building -----------------------------------------------------------------------------------------------
    @classmethod
    def wrap(
        cls,
        base: nn.Module,
        num_thought_tokens: int = 32,
        thought_token_ids: list[int] | None = None,
        generator_heads: int = 1,
        generator_ffn_dim: int | None = None,
        seed: int = 0,
        base_lora: dict[str, Any] | None = None,
    ) -> LTAThinkerModel:
        """Wrap `base` with a freshly initialised generator (torch's default init, drawn from `seed`), and a fresh
        LoRA on the base when `base_lora` gives its LoraConfig fields (`OFFICIAL_BASE_LORA`). Without
        `thought_token_ids`, the K slots get ids past the base's embedding rows and a frozen prior table whose rows
        are drawn around the embedding matrix (its mean plus its per-dim std times N(0, 1)): distinct, fixed priors
        (the card's "add K tokens and resize" for models without reserved ids), leaving the base untouched."""
        text = base.config.get_text_config()
        embedding = base.get_input_embeddings()
        vocab_rows = embedding.num_embeddings
        spec = ThoughtGeneratorSpec(
            num_thought_tokens=num_thought_tokens,
            thought_token_ids=list(thought_token_ids or range(vocab_rows, vocab_rows + num_thought_tokens)),
            hidden_size=text.hidden_size,
            ffn_dim=generator_ffn_dim or text.intermediate_size,
            num_heads=generator_heads,
            eps=float(getattr(text, "rms_norm_eps", None) or getattr(text, "layer_norm_eps", None) or 1e-6),
            vocab_rows=vocab_rows,
            base_model_name_or_path=getattr(base.config, "name_or_path", None) or None,
            base_lora=dict(base_lora) if base_lora else None,
        )
        if len(spec.thought_token_ids) != num_thought_tokens:
            raise ValueError(f"thought_token_ids needs {num_thought_tokens} ids, got {len(spec.thought_token_ids)}")
        generator = torch.Generator().manual_seed(seed)
        prior = None
        if thought_token_ids is None:
            with full_parameters([embedding.weight]) as (weight,):
                weight = weight.float()
                noise = torch.randn(num_thought_tokens, spec.hidden_size, generator=generator)
                prior = weight.mean(0) + weight.std(0) * noise
        elif max(thought_token_ids, default=0) >= vocab_rows:
            raise ValueError(f"thought_token_ids must be ids below the base's {vocab_rows} embedding rows.")
        fork = torch.random.fork_rng()
        with fork:
            torch.manual_seed(seed)
            model = cls(base, spec, prior)
        return model.to(embedding.weight.device)

    @property
    def config(self):
        """The base model's config (what Trainer and TRL read)."""
        return self.base.config

    @property
    def num_thought_tokens(self) -> int:
        return self.spec.num_thought_tokens

    @property
    def thought_token_ids(self) -> list[int]:
        return list(self.spec.thought_token_ids)

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def activation_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        """On the base's decoder layers (the generator is one block: not checkpointed)."""
        self.base.activation_checkpointing_enable(*args, **kwargs)

    def activation_checkpointing_disable(self) -> None:
        self.base.activation_checkpointing_disable()

    @property
    def _keys_to_ignore_on_save(self) -> list[str]:
        """The frozen base's weights: absent from a checkpoint by design, so Trainer's resume (which loads the
        generator non-strictly) does not warn about them. A base LoRA's matrices are saved."""
        return [f"base.{k}" for k in self.base.state_dict() if not _is_lora(k)]

    def tie_weights(self, *args: Any, **kwargs: Any) -> None:
        self.base.tie_weights(*args, **kwargs)

    def add_model_tags(self, tags) -> None:
        self.base.add_model_tags(tags)

    def get_input_embeddings(self) -> nn.Module:
        return self.base.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.base.get_output_embeddings()

    # --- forward ------------------------------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """E(ids) of the base; ids from `vocab_rows` on read the frozen prior table (the thought slots)."""
        embedding = self.base.get_input_embeddings()
        rows = self.spec.vocab_rows
        extra = ids >= rows
        embeds = embedding(ids.masked_fill(extra, 0))
        if hasattr(self, PRIOR) and extra.any():
            prior = getattr(self, PRIOR).to(embeds.dtype)[(ids - rows).clamp(min=0)]
            embeds = torch.where(extra[..., None], prior, embeds)
        return embeds

    def thought_states(self, assistant_input_ids: torch.Tensor, assistant_attention_mask: torch.Tensor):
        """H = P(T(E(a))): (B, La, d) in float32."""
        with torch.no_grad():
            embeds = self.embed(assistant_input_ids)
        dtype = next(self.generator.parameters()).dtype
        return self.generator(embeds.to(dtype), assistant_attention_mask)

    def inject(self, embeds: torch.Tensor, states: torch.Tensor, thought_index: torch.Tensor) -> torch.Tensor:
        """`embeds` with rows b0..b1 replaced by H rows a0..a1 (cast to the embedding dtype); other rows untouched."""
        k = self.num_thought_tokens
        offsets = torch.arange(k, device=embeds.device)
        d = embeds.size(-1)
        source = thought_index[:, 2:3] + offsets  # a0 + j
        target = thought_index[:, 0:1] + offsets  # b0 + j
        thoughts = states.gather(1, source[..., None].expand(-1, -1, d)).to(embeds.dtype)
        return embeds.scatter(1, target[..., None].expand(-1, -1, d), thoughts)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        assistant_input_ids: torch.Tensor | None = None,
        assistant_attention_mask: torch.Tensor | None = None,
        thought_index: torch.Tensor | None = None,
        ans_ids: torch.Tensor | None = None,
        ans_attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        """The base's output on the thought-filled embeddings (`fused_lm_head`, `labels`, ... go to the base), with
        `thought_states` (H, float32, or None when K = 0) and `answer_embedding` (mean E(answer tokens), no
        gradient, when `ans_ids` are given) added. Embedding lookups run here, inside the (engine-wrapped) forward."""
        with torch.no_grad():
            embeds = self.embed(input_ids)
        states = None
        if self.num_thought_tokens > 0:
            if assistant_input_ids is None or thought_index is None:
                raise ValueError("LTAThinkerModel needs assistant_input_ids and thought_index (see lta_format).")
            if assistant_attention_mask is None:
                assistant_attention_mask = torch.ones_like(assistant_input_ids)
            states = self.thought_states(assistant_input_ids, assistant_attention_mask)
            embeds = self.inject(embeds, states, thought_index)
        outputs = self.base(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)
        outputs["thought_states"] = states
        if ans_ids is not None:
            with torch.no_grad():
                mask = torch.ones_like(ans_ids) if ans_attention_mask is None else ans_attention_mask
                mask = mask.unsqueeze(-1).float()
                answer = (self.embed(ans_ids).float() * mask).sum(1) / mask.sum(1).clamp(min=1)
            outputs["answer_embedding"] = answer
        return outputs

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        assistant_input_ids: torch.Tensor | None = None,
        assistant_attention_mask: torch.Tensor | None = None,
        thought_index: torch.Tensor | None = None,
        **generate_kwargs: Any,
    ) -> torch.Tensor:
        """Generation from the base with the thoughts computed once and injected (the inference layout: the assistant
        sequence without steps). Returns only the new tokens, as `generate` with `inputs_embeds` does. Batched
        prompts must be left-padded, with `thought_index` counting the padding."""
        embeds = self.embed(input_ids)
        if self.num_thought_tokens > 0:
            if assistant_attention_mask is None:
                assistant_attention_mask = torch.ones_like(assistant_input_ids)
            embeds = self.inject(
                embeds, self.thought_states(assistant_input_ids, assistant_attention_mask), thought_index
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.base.generate(inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs)

    def generate_completions(self, tokenizer, prompts, max_new_tokens: int = 64, batch_size: int = 16, **kwargs: Any):
        """`trl_ext.inference.generate_completions`'s protocol for a wrapper model: each prompt's question answered
        with the thought slots filled (so `trl-ext compare` and `evaluate` measure an lta-thinker output folder)."""
        from .generation import generate_question_completions, question_of

        questions = [question_of(p) for p in prompts]
        return generate_question_completions(self, tokenizer, questions, max_new_tokens, batch_size, **kwargs)

    # --- save / load --------------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The generator's parameters, the base LoRA's if any, and the prior table, whole (gathered under ZeRO-3: a
        collective)."""
        named = {f"generator.{n}": p for n, p in self.generator.named_parameters()}
        named |= {f"base.{n}": p for n, p in self.base.named_parameters() if _is_lora(n)}
        with full_parameters(named.values()) as values:
            state = {n: v.detach().clone().cpu().contiguous() for n, v in zip(named, values, strict=True)}
        if hasattr(self, PRIOR):
            state[PRIOR] = getattr(self, PRIOR).detach().clone().cpu().contiguous()
        return state

    def save_pretrained(self, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
        """Write `thought_generator.safetensors` and `lta_thinker.json` (the base is not saved: it is frozen)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state() if state is None else state, str(path / WEIGHTS_NAME))
        (path / CONFIG_NAME).write_text(json.dumps(asdict(self.spec), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path, base: nn.Module | None = None, **base_kwargs: Any) -> LTAThinkerModel:
        """A saved generator on `base` (default: the base model its `lta_thinker.json` names, loaded with
        `trl_ext.models.load_model(**base_kwargs)`)."""
        from safetensors.torch import load_file

        path = Path(path)
        spec = ThoughtGeneratorSpec(**json.loads((path / CONFIG_NAME).read_text()))
        if base is None:
            if not spec.base_model_name_or_path:
                raise ValueError(f"{path / CONFIG_NAME} names no base model: pass base=")
            from trl_ext.models import load_model

            base = load_model(spec.base_model_name_or_path, **base_kwargs)
        rows = base.get_input_embeddings().num_embeddings
        if rows != spec.vocab_rows:
            raise ValueError(f"the generator was trained on a base with {spec.vocab_rows} embedding rows, not {rows}")
        state = load_file(str(path / WEIGHTS_NAME))
        model = cls(base, spec, state.pop(PRIOR, None))
        lora = {k: v for k, v in state.items() if k.startswith("base.")}
        model.generator.load_state_dict({k.removeprefix("generator."): v for k, v in state.items() if k not in lora})
        expected = {f"base.{n}" for n, _ in model.base.named_parameters() if _is_lora(n)}
        if set(lora) != expected:
            raise ValueError(
                f"{path / WEIGHTS_NAME} holds {len(lora)} base LoRA tensors where {CONFIG_NAME} implies "
                f"{len(expected)}: the files do not belong together"
            )
        model.load_state_dict(lora, strict=False)
        return model.to(base.get_input_embeddings().weight.device)


def load_output(folder: str | Path, **base_kwargs: Any) -> LTAThinkerModel:
    """An `lta-thinker` run's output folder (its generator on the base it names): the method's `load_output`."""
    return LTAThinkerModel.from_pretrained(folder, **base_kwargs)


def _is_lora(name: str) -> bool:
    """A base LoRA's matrix (peft names them `...q_proj.lora_A.default.weight`)."""
    return ".lora_A." in name or ".lora_B." in name


def _add_fused_head(base: nn.Module) -> None:
    """TRL's fused LM head on the base (per-token log-probs, entropy and top-1 as SFTTrainer asks), once."""
    if getattr(base, "_lta_fused_head", False):
        return
    from trl.trainer import add_fused_lm_head

    add_fused_lm_head(base, outputs=("log_probs", "entropy", "is_top1"))
    base._lta_fused_head = True
