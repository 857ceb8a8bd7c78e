"""Batched sequence log-likelihoods of (prompt, response) pairs under a model.

Pairs are rendered exactly as TRL's `SFTTrainer` renders prompt-completion data (chat template for conversational
prompts, EOS appended to plain-text completions, `keep_start` truncation), so a score is computed on the very tokens
SFT would train on: `-mean_logprob` of a pair is SFTTrainer's token-mean NLL on that single example.

The log-probs come from the last hidden states projected through the LM head in vocabulary chunks
(`trl.kernels.ChunkedLogProbFunction`), only at the completion positions: the `(batch, seq, vocab)` logits are never
built.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from trl.data_utils import common_prefix_length, is_conversational
from trl.kernels import ChunkedLogProbFunction

from trl_ext.compat.models import backbone as decoder_stack
from trl_ext.compat.models import backbone_forward_with_cache
from trl_ext.losses.token_loss import LMHead
from trl_ext.models import default_device

Messages = list[dict[str, Any]]


def _as_messages(completion: str | Messages) -> Messages:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return list(completion)


def tokenize_pair(
    tokenizer, prompt: str | Messages, completion: str | Messages, max_length: int | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of `prompt + completion` and the mask of the completion tokens, as SFTTrainer builds them.

    A conversational prompt goes through the chat template (`add_generation_prompt=True` for the prompt alone); a
    string completion after a conversational prompt is taken as the assistant's message. For plain text, EOS is
    appended to the completion when missing. The completion starts where the tokenized prompt and prompt+completion
    diverge (`trl.data_utils.common_prefix_length`). With `max_length`, the sequence keeps its first `max_length`
    tokens (SFTConfig's default `truncation_mode="keep_start"`).
    """
    if is_conversational({"prompt": prompt}):
        messages = list(prompt) + _as_messages(completion)
        prompt_ids = tokenizer.apply_chat_template(
            list(prompt), tokenize=True, return_dict=True, add_generation_prompt=True
        )["input_ids"]
        input_ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    else:
        if not isinstance(completion, str):
            raise TypeError("A plain-text prompt needs a plain-text completion, got a list of messages.")
        eos = tokenizer.eos_token
        if eos is not None and not completion.endswith(eos):
            completion = completion + eos
        prompt_ids = tokenizer(text=prompt)["input_ids"]
        input_ids = tokenizer(text=prompt + completion)["input_ids"]
    input_ids = list(input_ids)
    prompt_len = common_prefix_length(list(prompt_ids), input_ids)
    completion_mask = [0] * prompt_len + [1] * (len(input_ids) - prompt_len)
    if max_length is not None:
        input_ids, completion_mask = input_ids[:max_length], completion_mask[:max_length]
    return input_ids, completion_mask


@torch.no_grad()
def sequence_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str | Messages],
    completions: Sequence[str | Messages],
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = True,
    vocab_chunk_size: int = 8192,
) -> list[dict[str, float]]:
    """Log-likelihood of each completion given its prompt: one dict per pair, in input order, with `sum_logprob`,
    `num_tokens` (completion tokens scored) and `mean_logprob` (`sum / num`, `-inf` when no completion token is left,
    e.g. after truncation).

    Pairs are rendered with `tokenize_pair`, batched by length, right-padded with an attention mask, and scored in
    eval mode without gradients (the model's training mode is restored afterwards). The first token of a sequence has
    no context and is never scored, as in SFT.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"Got {len(prompts)} prompts and {len(completions)} completions; they must pair up.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    encoded = [tokenize_pair(tokenizer, p, c, max_length) for p, c in zip(prompts, completions, strict=True)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    per_token = token_logprobs(
        model,
        [ids for ids, _ in encoded],
        [mask for _, mask in encoded],
        pad_id=pad_id,
        batch_size=batch_size,
        progress=progress,
        vocab_chunk_size=vocab_chunk_size,
    )
    results = []
    for values in per_token:
        total, n = float(sum(values)), len(values)
        results.append({"sum_logprob": total, "num_tokens": n, "mean_logprob": total / n if n else -math.inf})
    return results


def tokenize_option(tokenizer, prompt: str | Messages, option: str) -> tuple[list[int], int]:
    """Token ids of `prompt + option` (no EOS added: an option is a continuation, not an ending) and the number of
    leading tokens that belong to the prompt alone (where the tokenized prompt and prompt+option diverge). A
    conversational prompt is rendered with the chat template (`add_generation_prompt=True`) and `option` appended to
    that text: the start of the assistant's reply."""
    if is_conversational({"prompt": prompt}):
        text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(text=text, add_special_tokens=False)["input_ids"]
        input_ids = tokenizer(text=text + option, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tokenizer(text=prompt)["input_ids"]
        input_ids = tokenizer(text=prompt + option)["input_ids"]
    input_ids = list(input_ids)
    eos = tokenizer.eos_token_id
    ends_with_eos = bool(tokenizer.eos_token) and option.endswith(tokenizer.eos_token)
    if eos is not None and input_ids and input_ids[-1] == eos and not ends_with_eos:
        input_ids = input_ids[:-1]  # a tokenizer that appends EOS itself: the option must not be scored with it
    n = common_prefix_length(list(prompt_ids), input_ids)
    if n >= len(input_ids):
        raise ValueError(f"The option {option!r} adds no token after its prompt.")
    return input_ids, n


@torch.no_grad()
def option_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str | Messages],
    options: Sequence[str] | Sequence[Sequence[str]],
    batch_size: int = 8,
    progress: bool = False,
    vocab_chunk_size: int = 8192,
    share_prompt: bool = True,
    shared_prefixes: Sequence[str] | None = None,
) -> list[list[float]]:
    """`sum_t log p(option_t | prompt, option_<t)` of each option after each prompt: one list per prompt, in the
    order of its options (`options` is one list for every prompt, or a list per prompt). This is how a causal LM
    scores a fixed label set or the choices of a multiple-choice item.

    Options are plain continuations (write " positive" with its leading space when it follows "Sentiment:"; no EOS
    is added). With `share_prompt` (default) the options of one prompt are scored on one run of the prompt: the
    prompt's KV cache is repeated over its options (`token_logprobs(prefix_lengths=...)`), which gives the same
    values to float tolerance. `shared_prefixes[i]` (plain-text prompts) widens the sharing: the start of prompt `i`
    that other prompts begin with too (in-context demos before the input), run once for every prompt that shares it
    and every option of those prompts. Every log-prob comes from the chunked head: no `(batch, seq, vocab)` logits.
    """
    per_prompt = [list(options)] * len(prompts) if options and isinstance(options[0], str) else list(options)
    if len(per_prompt) != len(prompts):
        raise ValueError(f"Got {len(prompts)} prompts and {len(per_prompt)} option lists; they must pair up.")
    if shared_prefixes is not None and len(shared_prefixes) != len(prompts):
        raise ValueError(f"Got {len(shared_prefixes)} shared prefixes for {len(prompts)} prompts.")
    sequences, masks, prefixes, owner = [], [], [], []
    for i, (prompt, choices) in enumerate(zip(prompts, per_prompt, strict=True)):
        if not choices:
            raise ValueError(f"Prompt {i} has no option to score.")
        encoded = [tokenize_option(tokenizer, prompt, str(choice)) for choice in choices]
        shared = min(n for _, n in encoded)  # a boundary token merged into one option is left out of the prefix
        if shared_prefixes is not None:
            if not isinstance(prompt, str) or not prompt.startswith(shared_prefixes[i]):
                raise ValueError(f"Prompt {i} does not start with its shared prefix {shared_prefixes[i]!r}.")
            head = tokenizer(text=shared_prefixes[i])["input_ids"]
            shared = min(shared, common_prefix_length(list(head), encoded[0][0]))
        for ids, n in encoded:
            sequences.append(ids)
            masks.append([0] * n + [1] * (len(ids) - n))
            prefixes.append(shared)
            owner.append(i)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    values = token_logprobs(
        model,
        sequences,
        masks,
        pad_id=pad_id,
        batch_size=batch_size,
        progress=progress,
        vocab_chunk_size=vocab_chunk_size,
        prefix_lengths=prefixes if share_prompt else None,
    )
    results: list[list[float]] = [[] for _ in prompts]
    for i, token_values in zip(owner, values, strict=True):
        results[i].append(float(sum(token_values)))
    return results


@torch.no_grad()
def token_logprobs(
    model,
    sequences: Sequence[Sequence[int]],
    target_masks: Sequence[Sequence[int | bool]],
    pad_id: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    vocab_chunk_size: int = 8192,
    prefix_lengths: Sequence[int] | None = None,
) -> list[list[float]]:
    """`log p(token_t | tokens_<t)` of the tokens each mask marks, per sequence, in token order (`token_scores`'s
    `log_probs` at temperature 1; see there).
    """
    return token_scores(
        model,
        sequences,
        target_masks,
        pad_id=pad_id,
        batch_size=batch_size,
        progress=progress,
        vocab_chunk_size=vocab_chunk_size,
        prefix_lengths=prefix_lengths,
    )["log_probs"]


@torch.no_grad()
def token_entropies(
    model,
    sequences: Sequence[Sequence[int]],
    target_masks: Sequence[Sequence[int | bool]],
    temperature: float = 1.0,
    pad_id: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    vocab_chunk_size: int = 8192,
    prefix_lengths: Sequence[int] | None = None,
) -> list[list[float]]:
    """Entropy (nats) of `softmax(z_t / temperature)`, the next-token distribution that predicts each token a mask
    marks, per sequence, in token order: the full-softmax entropy GRPOTrainer logs as `entropy` for its rollouts
    sampled at `temperature` (same chunked kernel, same temperature convention). See `token_scores`."""
    return token_scores(
        model,
        sequences,
        target_masks,
        pad_id=pad_id,
        batch_size=batch_size,
        progress=progress,
        vocab_chunk_size=vocab_chunk_size,
        prefix_lengths=prefix_lengths,
        temperature=temperature,
        outputs=("entropy",),
    )["entropy"]


@torch.no_grad()
def token_scores(
    model,
    sequences: Sequence[Sequence[int]],
    target_masks: Sequence[Sequence[int | bool]],
    pad_id: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    vocab_chunk_size: int = 8192,
    prefix_lengths: Sequence[int] | None = None,
    temperature: float = 1.0,
    outputs: Sequence[str] = ("log_probs",),
) -> dict[str, list[list[float]]]:
    """Per-token statistics of the tokens each mask marks, per sequence, in token order, one list per name in
    `outputs`: `log_probs` (`log p(token_t | tokens_<t)`) and/or `entropy` (of the whole next-token distribution),
    both of `softmax(z / temperature)`.

    `target_masks[i][t]` truthy marks token `t` of `sequences[i]` as scored; token 0 has no context and is never
    scored. One forward per batch of sequences (sorted by length, right-padded with `pad_id` under an attention
    mask) in eval mode without gradients (the training mode is restored); the log-probs come from the last hidden
    states at the scored positions only, through the LM head in vocabulary chunks: no `(batch, seq, vocab)` logits.
    Several spans of one sequence (a reasoning trace and the answer after it) are thus scored by one forward.

    `prefix_lengths[i]` (optional) marks tokens `[0, prefix_lengths[i])` of sequence `i` as a context that other
    sequences may share (the query of a GRPO group's G completions). Sequences whose prefixes hold the same tokens
    form a group: the prefix runs once and its KV cache is repeated over the group's continuations (see
    `_shared_prefix_hidden`), which gives the same log-probs to float tolerance for fewer FLOPs. A sequence whose
    prefix no other sequence shares, or with no token after it, takes the plain path above.
    """
    if len(sequences) != len(target_masks):
        raise ValueError(f"Got {len(sequences)} sequences and {len(target_masks)} masks; they must pair up.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    for i, (ids, mask) in enumerate(zip(sequences, target_masks, strict=True)):
        if len(ids) != len(mask):
            raise ValueError(f"sequence {i} has {len(ids)} tokens but its mask has {len(mask)} entries.")
    if prefix_lengths is not None and len(prefix_lengths) != len(sequences):
        raise ValueError(f"Got {len(prefix_lengths)} prefix lengths for {len(sequences)} sequences.")
    unknown = set(outputs) - {"log_probs", "entropy"}
    if unknown or not outputs:
        raise ValueError(f"outputs must name 'log_probs' and/or 'entropy', got {tuple(outputs)}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    results: dict[str, list[list[float]]] = {name: [[] for _ in sequences] for name in outputs}
    # The kernel always computes log-probs; entropy is an extra output it folds into the same pass.
    kernel_outputs = ("log_probs", "entropy") if "entropy" in outputs else ("log_probs",)
    model_ = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: LoRA lives inside
    backbone = decoder_stack(model_)
    lm_head = LMHead.of(model_)
    device = model_.get_input_embeddings().weight.device

    prompt_learning = is_prompt_learning(model)  # its virtual tokens live in the PeftModel's forward, not the backbone
    share = prefix_lengths is not None and not prompt_learning
    groups = _prefix_groups(sequences, prefix_lengths, batch_size) if share else []
    grouped = {i for _, members in groups for i in members}
    order = sorted(
        (i for i in range(len(sequences)) if len(sequences[i]) and i not in grouped), key=lambda i: -len(sequences[i])
    )
    plain = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    shared = _pack_groups(groups, batch_size)

    def score(batch: list[int], hidden: torch.Tensor) -> None:
        """Log-probs of `batch`'s marked tokens from its hidden states (right-padded: row r holds sequence
        batch[r]'s len(sequences[batch[r]]) positions first)."""
        width = hidden.shape[1]
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        target_mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, i in enumerate(batch):
            ids = sequences[i]
            input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
            target_mask[row, : len(ids)] = torch.tensor([bool(m) for m in target_masks[i]], dtype=torch.bool)
        # With the model split across devices (`device_map`), the backbone can end on another device than the head.
        head_device = lm_head.weight.device
        hidden, input_ids = hidden.to(head_device), input_ids.to(head_device)
        # Position t predicts token t + 1: score the positions whose next token is marked.
        scored = target_mask[:, 1:].to(head_device)
        targets = input_ids[:, 1:][scored]
        if not targets.numel():
            return
        per_token = ChunkedLogProbFunction.apply(
            hidden[:, :-1][scored],
            lm_head.weight,
            lm_head.bias,
            targets,
            float(temperature),
            vocab_chunk_size,
            lm_head.softcap,
            lm_head.logit_scale,
            kernel_outputs,
        )
        counts = scored.sum(dim=1).tolist()
        for name, values in (("log_probs", per_token[0]), ("entropy", per_token[1])):
            if name in results:
                for i, row in zip(batch, values.float().split(counts), strict=True):
                    results[name][i] = row.tolist()

    was_training = model.training
    model.eval()
    try:
        for kind, batch in tqdm(
            [("plain", b) for b in plain] + [("shared", b) for b in shared],
            desc="Scoring",
            unit="batch",
            disable=not progress,
        ):
            if kind == "shared":
                members, hidden = _shared_prefix_hidden(backbone, sequences, batch, pad_id, device)
                score(members, hidden)
                continue
            width = max(len(sequences[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids = sequences[i]
                input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            if prompt_learning:
                hidden = _prompt_learning_hidden(model, input_ids, attention_mask)
            else:
                hidden = backbone(
                    input_ids=input_ids, attention_mask=attention_mask, use_cache=False
                ).last_hidden_state
            score(batch, hidden)
    finally:
        model.train(was_training)
    return results


def is_prompt_learning(model) -> bool:
    """A PeftModel whose active adapter is prompt, prefix or p-tuning: virtual tokens or key/value prefixes that only
    the PeftModel's own forward adds (the backbone alone would score the base model)."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def _prompt_learning_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The final (normed) hidden states of the real tokens through the PeftModel's forward, which prepends the
    virtual tokens (prompt tuning) or the key/value prefixes (prefix tuning); the head is applied to the last
    position only (`logits_to_keep=1`), so no (batch, seq, vocab) logits are built."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=True,
        logits_to_keep=1,
        use_cache=False,
    )
    return out.hidden_states[-1][:, -input_ids.shape[1] :]  # virtual tokens, where prepended, come first


def _prefix_groups(
    sequences: Sequence[Sequence[int]], prefix_lengths: Sequence[int], batch_size: int
) -> list[tuple[int, list[int]]]:
    """(prefix length, member indices) of each set of >= 2 sequences whose first `prefix_lengths[i]` tokens are the
    same and which have tokens after them, in order of first appearance; a set larger than `batch_size` is cut into
    groups of at most `batch_size` (each runs its prefix once)."""
    by_prefix: dict[tuple[int, ...], list[int]] = {}
    for i, (ids, n) in enumerate(zip(sequences, prefix_lengths, strict=True)):
        n = int(n)
        if 0 < n < len(ids):
            by_prefix.setdefault(tuple(ids[:n]), []).append(i)
    groups = []
    for prefix, members in by_prefix.items():
        if len(members) < 2:
            continue
        for k in range(0, len(members), batch_size):
            chunk = members[k : k + batch_size]
            if len(chunk) >= 2:
                groups.append((len(prefix), chunk))
    return groups


def _pack_groups(groups: list[tuple[int, list[int]]], batch_size: int) -> list[list[tuple[int, list[int]]]]:
    """Whole groups packed into batches of at most `batch_size` continuations."""
    batches: list[list[tuple[int, list[int]]]] = []
    size = 0
    for group in groups:
        if not batches or size + len(group[1]) > batch_size:
            batches.append([])
            size = 0
        batches[-1].append(group)
        size += len(group[1])
    return batches


def _shared_prefix_hidden(
    backbone, sequences: Sequence[Sequence[int]], groups: list[tuple[int, list[int]]], pad_id: int, device
) -> tuple[list[int], torch.Tensor]:
    """Last hidden states of every member of `groups`, right-padded (member order), from two forwards: the groups'
    distinct prefixes, left-padded into one batch, with `use_cache=True`; then every member's continuation,
    right-padded, on that KV cache with its rows repeated over each group (`Cache.batch_select_indices`). Positions
    are explicit (a prefix's first real token is position 0, a continuation goes on from its prefix's length) and
    the attention mask covers the prefix padding, so each member sees exactly its own tokens."""
    lengths = [n for n, _ in groups]
    width_p = max(lengths)
    prefix_ids = torch.full((len(groups), width_p), pad_id, dtype=torch.long)
    prefix_mask = torch.zeros((len(groups), width_p), dtype=torch.long)
    for k, (n, members) in enumerate(groups):
        prefix_ids[k, width_p - n :] = torch.tensor(list(sequences[members[0]][:n]), dtype=torch.long)
        prefix_mask[k, width_p - n :] = 1
    prefix_pos = (prefix_mask.cumsum(dim=1) - 1).clamp(min=0)
    prefix_hidden, cache = backbone_forward_with_cache(
        backbone,
        input_ids=prefix_ids.to(device),
        attention_mask=prefix_mask.to(device),
        position_ids=prefix_pos.to(device),
    )

    members = [i for _, group in groups for i in group]
    group_of = [k for k, (_, group) in enumerate(groups) for _ in group]
    suffix_len = [len(sequences[i]) - lengths[k] for i, k in zip(members, group_of, strict=True)]
    width_s = max(suffix_len)
    suffix_ids = torch.full((len(members), width_s), pad_id, dtype=torch.long)
    suffix_mask = torch.zeros((len(members), width_s), dtype=torch.long)
    for row, (i, k) in enumerate(zip(members, group_of, strict=True)):
        suffix_ids[row, : suffix_len[row]] = torch.tensor(list(sequences[i][lengths[k] :]), dtype=torch.long)
        suffix_mask[row, : suffix_len[row]] = 1
    index = torch.tensor(group_of, dtype=torch.long)
    cache.batch_select_indices(index.to(device))  # row r of the cache = its group's prefix
    suffix_pos = torch.tensor([lengths[k] for k in group_of])[:, None] + torch.arange(width_s)[None, :]
    suffix_hidden, _ = backbone_forward_with_cache(
        backbone,
        cache,
        input_ids=suffix_ids.to(device),
        attention_mask=torch.cat([prefix_mask[index], suffix_mask], dim=1).to(device),
        position_ids=suffix_pos.to(device),
    )

    width = max(len(sequences[i]) for i in members)
    hidden = suffix_hidden.new_zeros((len(members), width, suffix_hidden.shape[-1]))
    for row, k in enumerate(group_of):
        n = lengths[k]
        hidden[row, :n] = prefix_hidden[k, width_p - n :].to(hidden.device)
        hidden[row, n : n + suffix_len[row]] = suffix_hidden[row, : suffix_len[row]]
    return members, hidden


@functools.lru_cache(maxsize=2)
def load_scorer(name_or_path: str, dtype: str = "float32", device: str | None = None):
    """A frozen scoring model and its tokenizer, loaded once per process (`name_or_path`, `dtype`, `device`) through
    `trl_ext.models` (Hub ids, local folders, built-in aliases): eval mode, `requires_grad=False` on every parameter,
    on `device` (default: this process's accelerator when there is one, else the CPU). It is held by this cache, not
    by a trainer, so no optimizer, accelerator wrapper or checkpoint ever sees it; it is whole on every process, even
    under DeepSpeed ZeRO-3."""
    from trl_ext.compat.sharding import whole_model_loading
    from trl_ext.models import load_model, load_tokenizer

    with whole_model_loading():  # under a live ZeRO-3 config a partitioned scorer would have nothing to gather it
        model = load_model(name_or_path, dtype=dtype)
    tokenizer = load_tokenizer(name_or_path)
    model.requires_grad_(False)
    model.eval()
    return model.to(device or default_device()), tokenizer
