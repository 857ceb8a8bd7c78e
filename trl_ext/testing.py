"""Tiny offline models for tests and plugin scaffolds: a byte-level BPE tokenizer trained in code and a Llama of a
few layers built from a config. Nothing is downloaded.

Also the harness for loss-normalisation tests: one SGD step at learning rate 1 (`SGD_STEP_ARGS`) makes the weight
update minus the gradient, so running the same global batch as one process, with gradient accumulation and under
`torchrun` (`run_layout`) and comparing the updates (`max_update_diff`) checks a loss's normalisation end to end."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def tiny_encoder_model(hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    """(model, tokenizer): a randomly initialised BERT encoder over `tiny_tokenizer`, in eval mode, for tests of
    sentence-embedding code (`trl_ext.inference.text_encoder`); no weights are read."""
    from transformers import BertConfig, BertModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertModel(config).eval(), tokenizer


def save_tiny_encoder(path: str | Path, **kwargs) -> Path:
    """Write `tiny_encoder_model(**kwargs)` and its tokenizer to `path`, a folder for an `encoder_name_or_path`."""
    path = Path(path)
    model, tokenizer = tiny_encoder_model(**kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def numpy_text_cosine(model, tokenizer, a: str, b: str) -> float:
    """Reference for sentence-embedding cosines in tests, independent of `trl_ext.inference.text_encoder`: each text
    alone (no padding), numpy mean of its tokens' last hidden states, cosine in float64."""
    import numpy as np

    def embed(text: str):
        enc = tokenizer([text], truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0].numpy().astype(np.float64)
        return hidden.mean(axis=0)

    x, y = embed(a), embed(b)
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def save_tiny_model(path: str | Path, **kwargs) -> Path:
    """Write a tiny model and its tokenizer to `path` so it loads with `--model_name_or_path path`."""
    path = Path(path)
    model = tiny_model(**kwargs)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def full_logits_perplexities(model, tokenizer, rows: list[dict[str, Any]]) -> list[float]:
    """exp(token-mean NLL of each row's completion) from a plain full-logits forward, one row at a time in float64:
    the independent reference compare's chunked `perplexity` metric is tested against."""
    import math

    from trl_ext.inference.scoring import tokenize_pair

    out = []
    for row in rows:
        ids, mask = tokenize_pair(tokenizer, row["prompt"], row["completion"])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
        logprobs = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
        out.append(math.exp(-logprobs[torch.tensor(mask[1:], dtype=torch.bool)].mean().item()))
    return out


def uneven_rows() -> list[dict[str, Any]]:
    """Four prompt-completion rows whose completions have different lengths, so a token mean over the global batch,
    a mean of per-micro-batch means and a mean of per-sequence means all differ: the data of a normalisation test."""
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
            "completion": [
                {"role": "assistant", "content": f"{a} + {b} = {a + b}." + " The answer is" * k + f" {a + b}."}
            ],
        }
        for a, b, k in [(3, 4, 1), (12, 30, 4), (7, 8, 2), (100, 23, 0)]
    ]


# The arguments of a short test run that writes nothing but its output folder: one step of 4 rows, every step logged.
ONE_STEP_ARGS: dict[str, Any] = dict(
    per_device_train_batch_size=4,
    max_steps=1,
    report_to="none",
    bf16=False,
    logging_steps=1,
    save_strategy="no",
)


def one_step_config(cls: type, output_dir: str | Path, **overrides: Any):
    """`cls(output_dir=..., **ONE_STEP_ARGS)` with `overrides` on top: the config of the plugins' loss tests, kept in
    one place so that the test files cannot drift apart in what a "one-step run" means."""
    return cls(**{"output_dir": str(output_dir), **ONE_STEP_ARGS, **overrides})


def tiny_trainer(trainer_cls: type, args: Any, rows: list[dict[str, Any]], model: Any = None, **kwargs: Any):
    """`trainer_cls` training `model` (default: a fresh `tiny_model()`) on `rows` with the tiny tokenizer: the
    trainer that the plugins' loss tests build over and over; `kwargs` go to the trainer."""
    from datasets import Dataset

    return trainer_cls(
        model=tiny_model() if model is None else model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
        **kwargs,
    )


def trainer_loss_and_grads(
    trainer_cls: type,
    args: Any,
    rows: list[dict[str, Any]],
    model: Any = None,
    count_items: bool = True,
    **kwargs: Any,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any, dict[str, Any]]:
    """`loss_and_grads` on the first batch of `tiny_trainer(trainer_cls, args, rows, model, **kwargs)`; returns
    `(loss, grads, trainer, batch)`, the four things a loss test compares against its reference."""
    trainer = tiny_trainer(trainer_cls, args, rows, model, **kwargs)
    loss, grads, batch = loss_and_grads(trainer, count_items=count_items)
    return loss, grads, trainer, batch


# One plain optimizer step: SGD at lr 1 without clipping, so the update is exactly minus the accumulated gradient.
SGD_STEP_ARGS: dict[str, Any] = dict(
    max_steps=1,
    optim="sgd",
    learning_rate=1.0,
    lr_scheduler_type="constant",
    max_grad_norm=0.0,
    report_to="none",
    bf16=False,
    save_strategy="no",
    logging_steps=1,
    use_cpu=True,
    seed=0,
    dataloader_drop_last=False,
)


def train_one_step(trainer) -> dict[str, Any]:
    """Train (one SGD step under `SGD_STEP_ARGS`) and return the logged metrics of the step, `steps`, and `update`:
    initial minus final value of every trainable parameter, flattened to lists (JSON-ready)."""
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    log = next(e for e in trainer.state.log_history if "loss" in e)
    params = dict(trainer.accelerator.unwrap_model(trainer.model).named_parameters())
    update = {n: (initial[n] - params[n].detach()).flatten().tolist() for n in initial}
    return {**log, "steps": trainer.state.global_step, "update": update}


def save_step_result(trainer, result: dict[str, Any], path: str | Path) -> None:
    """Write `result` from the main process, then leave the process group cleanly (a rank that exits while gloo's
    threads still run can abort at interpreter exit)."""
    if trainer.is_world_process_zero():
        Path(path).write_text(json.dumps(result))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def free_port() -> int:
    """A TCP port nothing listens on now, for a `torchrun --master_port` (no hash of the pid that two runs can share)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


EXIT_ABORT = "terminate called without an active exception"


def run_launched(command: list[str], nproc: int, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    """Run `python command`, under `torchrun --nproc_per_node nproc` when nproc > 1. A torchrun whose rank died at
    interpreter exit with EXIT_ABORT (a gloo thread torn down while joinable, rare: about one launch in several
    hundred here, even after `destroy_process_group`) is run once more on a fresh port; any other failure, or the
    same abort twice, is returned as it is."""

    def launch() -> subprocess.CompletedProcess:
        launcher = [sys.executable]
        if nproc > 1:
            launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
            launcher += ["--master_port", str(free_port())]
        return subprocess.run([*launcher, *command], env=env, capture_output=True, text=True, timeout=timeout)

    result = launch()
    if nproc > 1 and result.returncode != 0 and EXIT_ABORT in result.stderr:
        print(f"a rank aborted at exit ({EXIT_ABORT!r}); running {command[:2]} once more", file=sys.stderr)
        result = launch()
    return result


def run_cli(
    *args: Any, nproc: int = 1, timeout: int = 600, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m trl_ext *args` as one process, or under `torchrun --nproc_per_node nproc`, the way users launch
    it: one thread per process, no GPU, DeepSpeed on CPU, `env` on top. With `check`, a non-zero exit fails with
    stderr's tail."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu", **(env or {})}
    command = ["-m", "trl_ext", *map(str, args)]
    result = run_launched(command, nproc, env, timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(result.args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def run_layout(script: str | Path, out: str | Path, *args: Any, nproc: int = 1, timeout: int = 600) -> dict:
    """Run `script out *args` as one process, or under `torchrun --nproc_per_node nproc` (gloo on CPU, one thread
    each), and return the JSON the script wrote to `out`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = run_launched([str(script), str(out), *map(str, args)], nproc, env, timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(result.args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(Path(out).read_text())


def max_update_diff(a: dict, b: dict) -> float:
    """Largest difference between two runs' weight updates (the `update` of `train_one_step`)."""
    if a["update"].keys() != b["update"].keys():
        raise AssertionError(f"different parameters: {sorted(a['update'])} vs {sorted(b['update'])}")
    return max(
        max((abs(x - y) for x, y in zip(a["update"][k], b["update"][k], strict=True)), default=0.0)
        for k in a["update"]
    )


def largest_update(run: dict) -> float:
    return max(abs(v) for u in run["update"].values() for v in u)


def check_same_step_in_every_layout(
    script: str | Path,
    out_dir: str | Path,
    *args: Any,
    layouts: dict[str, tuple[int, int, int]] | None = None,
    tolerance: float = 1e-6,
) -> dict[str, dict]:
    """Run `script out per_device accumulation *args` in each layout `name: (processes, per_device, accumulation)`
    (default: batch 4 on one process, 2 x 2 accumulated, 2 processes of 2) and assert that every layout's loss and
    weight update equal the first one's (update to `tolerance` relative to the largest update, at least 1e-4 so the
    step did something). Returns the runs by name."""
    layouts = layouts or {"single": (1, 4, 1), "accumulated": (1, 2, 2), "ddp": (2, 2, 1)}
    out_dir = Path(out_dir)
    suffix = "-".join(map(str, args))
    runs = {
        name: run_layout(script, out_dir / f"{name}{suffix}.json", per_device, accumulation, *args, nproc=nproc)
        for name, (nproc, per_device, accumulation) in layouts.items()
    }
    first, *others = runs
    for name in others:
        assert_same_step(runs[first], runs[name], tolerance, name)
    return runs


def assert_same_step(reference: dict, other: dict, tolerance: float = 1e-6, name: str = "run") -> None:
    """`other`'s loss equals `reference`'s to 1e-5 relative and its weight update to `tolerance` relative to the
    largest update, which must be at least 1e-4 (else the step did nothing and the comparison is void)."""
    largest = largest_update(reference)
    assert largest > 1e-4, f"the step barely moved the weights ({largest:g}): the comparison would be void"
    diff = max_update_diff(reference, other)
    assert diff < tolerance * max(1.0, largest), f"{name}: weight update differs by {diff:g}"
    assert abs(other["loss"] - reference["loss"]) <= 1e-5 * abs(reference["loss"]), (
        f"{name}: loss {other['loss']} vs {reference['loss']}"
    )


def stop_at_step(step: int):
    """A callback that ends training after `step` optimizer steps, as a killed job would (its checkpoints stay)."""
    from transformers import TrainerCallback

    class StopAtStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= step:
                control.should_training_stop = True

    return StopAtStep()


def interrupted_and_resumed(make, out_dir: str | Path, stop_step: int) -> tuple[Any, Any, Any]:
    """The checkpoint/resume check: `make(folder)` builds a trainer writing to `folder` whose config saves a checkpoint
    at `stop_step`. Returns `(full, cut, resumed)`: an unbroken run in out_dir/full; a run in out_dir/cut stopped after
    `stop_step` steps; and a fresh trainer resumed in out_dir/cut from checkpoint-`stop_step`, trained to the end."""
    out_dir = Path(out_dir)
    full = make(out_dir / "full")
    full.train()
    cut = make(out_dir / "cut")
    cut.add_callback(stop_at_step(stop_step))
    cut.train()
    resumed = make(out_dir / "cut")
    resumed.train(resume_from_checkpoint=str(out_dir / "cut" / f"checkpoint-{stop_step}"))
    return full, cut, resumed


def logged(trainer, key: str) -> dict[int, float]:
    """`key` from the trainer's log history, by global step."""
    return {e["step"]: e[key] for e in trainer.state.log_history if key in e}


def first_batch(trainer) -> dict[str, Any]:
    """The trainer's first collated training batch, on its device."""
    from trl_ext.compat.trainer import prepare_inputs

    return prepare_inputs(trainer, next(iter(trainer.get_train_dataloader())))


def loss_and_grads(trainer, batch: dict[str, Any] | None = None, count_items: bool = True):
    """`compute_loss` on `batch` (default: the first training batch) in train mode, then backward. Returns the
    detached loss, the gradient of every parameter that got one, and the batch. With `count_items` the loss gets the
    batch's scored-token count as `num_items_in_batch`, as inside the training loop; else None, as outside it."""
    batch = first_batch(trainer) if batch is None else batch
    trainer.model.train()
    num_items = (batch["labels"][:, 1:] != -100).sum() if count_items else None
    loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=num_items)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, batch


def padded_batch(rows: list[list[int]], pad: int, prompt: int = 0) -> dict[str, torch.Tensor]:
    """A right-padded batch of token lists, labels -100 on padding and on the first `prompt` tokens: a batch built by
    hand, without a collator, for tests that pick every token of a loss's input."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :prompt] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def relative_grad_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], scale: float = 1.0) -> float:
    """`max_grad_diff` divided by the largest gradient magnitude in `a`: two float32 computations of one gradient that
    sum in a different order (another kernel, another library version) differ by a few ulps of the values' scale, so
    a tolerance on this ratio holds across versions where an absolute one does not."""
    largest = max(v.abs().max().item() for v in a.values())
    return max_grad_diff(a, b, scale) / max(largest, torch.finfo(torch.float32).tiny)


def max_grad_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], scale: float = 1.0) -> float:
    """Largest elementwise difference between two gradient dicts over the same parameters (`b` times `scale`)."""
    assert a.keys() == b.keys(), a.keys() ^ b.keys()
    return max((a[k] - scale * b[k]).abs().max().item() for k in a)


# --- sharded engines on CPU: DeepSpeed ZeRO and torch FSDP2 -----------------------------------------------------------
def deepspeed_config(stage: int) -> dict[str, Any]:
    """A DeepSpeed config for `TrainingArguments(deepspeed=...)` on CPU (run with DS_ACCELERATOR=cpu): ZeRO `stage`,
    batch sizes from the trainer's arguments, torch's SGD kept. ZeRO-3 partitions every parameter however small, so
    a tiny model is held in shards like a large one."""
    zero: dict[str, Any] = {"stage": stage}
    if stage == 3:
        # save_model writes the whole weights (not only DeepSpeed's sharded checkpoint), as a user would configure
        zero.update(
            stage3_param_persistence_threshold=0,
            stage3_prefetch_bucket_size=0,
            stage3_gather_16bit_weights_on_model_save=True,
        )
    return {
        "zero_optimization": zero,
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
    }


def fully_shard_like_accelerate(model: torch.nn.Module) -> torch.nn.Module:
    """Shard `model` with torch FSDP2's `fully_shard` in the units accelerate 1.15's `fsdp2_prepare_model` builds for
    a transformers model: each decoder layer (`_no_split_modules`), the input embedding (when untied), the tail
    [final norm, LM head] (not resharded after forward), then the root. Needs an initialised process group."""
    from torch.distributed.fsdp import fully_shard

    from trl_ext.compat.models import no_split_module_classes

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_classes = no_split_module_classes(base)
    for module in list(model.modules()):
        if type(module).__name__ in layer_classes:
            fully_shard(module)
    embed, head = base.get_input_embeddings(), base.get_output_embeddings()
    tied = embed.weight is head.weight
    if not tied:
        fully_shard(embed)
    decoder = base.model if hasattr(base, "model") else base.base_model
    tail = [decoder.norm, embed, head] if tied else [decoder.norm, head]
    fully_shard(tail, reshard_after_forward=False)
    fully_shard(model)
    return model


def shard_trainer_with_fsdp2(trainer) -> None:
    """Shard a built trainer's model with FSDP2 as accelerate would, and keep accelerate from wrapping it in DDP on
    top (accelerate enables FSDP only on accelerators, so on CPU the sharding is applied here, before `train()`)."""
    fully_shard_like_accelerate(trainer.model)
    trainer.accelerator.prepare_model = lambda model, *args, **kwargs: model


def train_one_sharded_step(trainer) -> dict[str, Any]:
    """`train_one_step` for a model held in shards (ZeRO-3, FSDP2) or not: the initial and final values of every
    trainable parameter are read whole (gathered on every process)."""
    from trl_ext.training.sharding import unsharded_state

    def trainable(model):
        model = trainer.accelerator.unwrap_model(model)
        return unsharded_state(model, only_trainable=True)

    initial = trainable(trainer.model)
    trainer.train()
    final = trainable(trainer.model)
    log = next(e for e in trainer.state.log_history if "loss" in e)
    update = {n: (initial[n] - final[n]).flatten().tolist() for n in initial}
    return {**log, "steps": trainer.state.global_step, "update": update}


def layout_step_args(
    name: str, per_device: int, accumulation: int, engine: str = "none", **overrides: Any
) -> dict[str, Any]:
    """The config keywords that a step script for `check_same_step_in_every_layout` takes from its layout: one SGD
    step (`SGD_STEP_ARGS`, `overrides` on top) with `per_device` rows and `accumulation` micro-batches, rows in order,
    no gradient checkpointing, DeepSpeed ZeRO for `engine` "zero2"/"zero3" (else none), output in /tmp/{name}-{engine}.
    One definition, so that every layout and every script runs the same step."""
    engines = {"zero2": {"deepspeed": deepspeed_config(2)}, "zero3": {"deepspeed": deepspeed_config(3)}}
    return {
        "output_dir": f"/tmp/{name}-{engine}",
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": accumulation,
        "gradient_checkpointing": False,
        "shuffle_dataset": False,
        **SGD_STEP_ARGS,
        **engines.get(engine, {}),
        **overrides,
    }


def tiny_run_flags(max_steps: int = 1, batch_size: int = 2, logging_steps: int | None = None) -> list[str]:
    """CLI flags of a tiny `trl-ext train` run in tests: `max_steps` steps of `batch_size` rows per device, nothing
    reported or checkpointed, and every `logging_steps`-th step logged when given. One list for the many CLI tests."""
    flags = ["--max_steps", str(max_steps), "--per_device_train_batch_size", str(batch_size)]
    if logging_steps is not None:
        flags += ["--logging_steps", str(logging_steps)]
    return flags + ["--report_to", "none", "--save_strategy", "no"]


def train_argv(method: str, model: str | Path, output_dir: str | Path, *args: Any) -> list[str]:
    """The argv of `trl-ext train method --model_name_or_path model *args --output_dir output_dir` for
    `trl_ext.cli.main`: the frame every in-process CLI test writes, so only what a test is about stays in it."""
    return ["train", method, "--model_name_or_path", str(model), *map(str, args), "--output_dir", str(output_dir)]


def tiny_grpo_flags(max_steps: int = 1, max_completion_length: int = 8) -> list[str]:
    """`tiny_run_flags` of a GRPO run in tests: batches of 2, 2 generations of at most `max_completion_length` tokens
    per prompt, every step logged (the reward metrics the tests read are in the logs)."""
    return [
        *tiny_run_flags(max_steps, 2, logging_steps=1),
        "--num_generations",
        "2",
        "--max_completion_length",
        str(max_completion_length),
    ]


def save_tiny_dual_encoder(path: str | Path, kind: str = "clip", seed: int = 0, image_size: int = 32) -> Path:
    """Write a tiny randomly initialised CLIPModel (`kind="clip"`) or SiglipModel (`"siglip"`), built from its config,
    with the tiny tokenizer to `path`: a user-supplied dual encoder for tests, loaded by path."""
    import copy

    from tokenizers import processors
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    # CLIP pools the text at its first EOS token, so texts must end with one, as CLIP's own tokenizer makes them; the
    # EOS must not have id 2, which transformers reads as a legacy config (pooling at the highest token id instead).
    tokenizer = copy.deepcopy(tiny_tokenizer())
    tokenizer.eos_token = eos = "<|endoftext|>"
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tokenizer.eos_token_id)]
    )
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None}
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    vision = {**tower, "image_size": image_size, "patch_size": 8}
    torch.manual_seed(seed)
    if kind == "clip":
        text = {**tower, **ids, "vocab_size": len(tokenizer), "max_position_embeddings": 32}
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    elif kind == "siglip":
        text = {**tower, **ids, "vocab_size": len(tokenizer), "max_position_embeddings": 16}
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    else:
        raise ValueError(f"kind={kind!r} must be 'clip' or 'siglip'")
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
