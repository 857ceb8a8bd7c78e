"""Tiny offline models for tests and plugin scaffolds: a byte-level BPE tokenizer trained in code and a Llama of a
few layers built from a config. Nothing is downloaded."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have? 3 + 4 = 7. The answer is 7.",
    "A box holds 12 pens. 5 are taken out. 12 - 5 = 7. The answer is 7.",
    "Each of 6 bags has 8 marbles. 6 * 8 = 48. The answer is 48.",
    'Return JSON only: {"reasoning": "2 + 2 = 4", "answer": 4, "name": "Ann", "age": 31, "city": "Oslo"}',
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"()[]{}<>+-*/=_#@%&$\n",
    "You are a helpful assistant. Solve the problem and give the final answer.",
]


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer (ChatML template, pad/eos set) trained on a fixed corpus: deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<pad>", unk_token=None
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model(
    vocab_size: int | None = None,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
    tie_word_embeddings: bool = False,
):
    """A randomly initialised Llama with a few layers, in float32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


def save_tiny_model(path: str | Path, **kwargs) -> Path:
    """Write a tiny model and its tokenizer to `path` so it loads with `--model_name_or_path path`."""
    path = Path(path)
    model = tiny_model(**kwargs)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path
