"""LTA-Thinker's data layout (card): `lta_format` tokenizes a (question, steps, answer) row into the base input x
with K thought placeholders, its labels, the assistant sequence a and the index columns; `LTACollator` pads them;
`builtin:lta_steps` generates step-wise arithmetic problems; `lta_gsm8k` splits GSM8K-style answers into steps."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

# The columns lta_format adds beyond input_ids / labels; kept through `remove_unused_columns` for the collator.
INDEX_COLUMNS = ("assistant_input_ids", "thought_index", "q_and_step_index", "ans_ids")
SOURCE_COLUMNS = ("question", "steps", "answer")

ASSISTANT_INSTRUCTION = "Generate {k} tokens to help solve the following question.\nQuestion: {question}"
REFERENCE = "\nHere are prompts from assistant model for reference: <bot>"
END_OF_THOUGHTS = "<eot>"
# Supervision starts this many tokens after the thought span (official: labels are -100 before b1 + 2).
LABEL_OFFSET = 2
_MARK = "\x00LTA_THOUGHTS\x00"


def step_turn(i: int, step: str) -> str:
    return f"## Step {i}: {step}"


def solution_text(steps: Sequence[str], answer: str) -> str:
    """The gold chain of thought the base is trained on (card): its steps, then the boxed answer."""
    lines = [step_turn(i + 1, s) for i, s in enumerate(steps)]
    return "\n".join([*lines, f"Therefore, the final answer is: $\\boxed{{{answer}}}$."])


def _render(tokenizer, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("LTA-Thinker formats its sequences with the tokenizer's chat template; this one has none.")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _turn_ids(tokenizer, messages, thought_ids: list[int]) -> tuple[list[int], list[int], tuple[int, int] | None]:
    """Token ids of the rendered conversation built turn by turn (each turn tokenized alone, so turn ends are exact
    positions), the index of each turn's last token, and the span of the thought placeholders (the `_MARK` in a
    message's content)."""
    ids: list[int] = []
    ends: list[int] = []
    span = None
    previous = ""
    for j in range(len(messages)):
        rendered = _render(tokenizer, messages[: j + 1])
        if not rendered.startswith(previous):
            raise ValueError("the chat template does not render a conversation as the sum of its turns")
        chunk, previous = rendered[len(previous) :], rendered
        if _MARK in chunk:
            head, tail = chunk.split(_MARK)
            ids += _ids(tokenizer, head)
            span = (len(ids), len(ids) + len(thought_ids))
            ids += thought_ids + _ids(tokenizer, tail)
        else:
            ids += _ids(tokenizer, chunk)
        ends.append(len(ids) - 1)
    return ids, ends, span


def lta_format(
    example: dict[str, Any], tokenizer, thought_ids: Sequence[int], with_steps: bool = True, with_answer: bool = True
) -> dict[str, Any]:
    """One row in the card's layout. `with_steps`: the assistant sequence holds the gold steps (training; inference
    and evaluation have none). `with_answer`: x holds the gold solution and labels (else x is the generation prompt).

    x = chat(user: question + REFERENCE + K thoughts + "<eot>", assistant: solution); labels = x from b1 + 2 on.
    a = chat(user: instruction + question, [assistant: "## Step i: ..."]*, assistant: K thoughts).
    thought_index = [b0, b1, a0, a1]; q_and_step_index = [q, s_1..s_S] (last token of the question turn and of each
    step turn in a); ans_ids = the answer string's tokens."""
    thought_ids = list(thought_ids)
    k = len(thought_ids)
    question, answer = str(example["question"]), str(example["answer"])
    steps = [str(s) for s in (example.get("steps") or [])]
    user = {"role": "user", "content": f"{question}{REFERENCE}{_MARK}{END_OF_THOUGHTS}"}
    if with_answer:
        completion = {"role": "assistant", "content": solution_text(steps, answer)}
        input_ids, _, x_span = _turn_ids(tokenizer, [user, completion], thought_ids)
    else:
        prompt_ids, _, x_span = _turn_ids(tokenizer, [user], thought_ids)
        full = _render(tokenizer, [user], generation_prompt=True)
        input_ids = prompt_ids + _ids(tokenizer, full[len(_render(tokenizer, [user])) :])
    b0, b1 = x_span
    turns = [{"role": "user", "content": ASSISTANT_INSTRUCTION.format(k=k, question=question)}]
    if with_steps:
        turns += [{"role": "assistant", "content": step_turn(i + 1, s)} for i, s in enumerate(steps)]
    turns.append({"role": "assistant", "content": _MARK})
    assistant_ids, ends, (a0, a1) = _turn_ids(tokenizer, turns, thought_ids)
    step_ends = ends[1:-1] if with_steps else []
    row = {
        "input_ids": input_ids,
        "assistant_input_ids": assistant_ids,
        "thought_index": [b0, b1, a0, a1],
        "q_and_step_index": [ends[0], *step_ends],
        "ans_ids": _ids(tokenizer, answer) or [tokenizer.pad_token_id],
    }
    if with_answer:
        row["labels"] = [-100 if i < b1 + LABEL_OFFSET else t for i, t in enumerate(input_ids)]
    return row


def format_dataset(dataset, tokenizer, thought_ids: Sequence[int], with_steps: bool, num_proc: int | None = None):
    """`lta_format` over a dataset of question/steps/answer rows (the source columns and any others dropped); a
    dataset that already has `assistant_input_ids` is returned as it is."""
    if dataset is None or "assistant_input_ids" in dataset.column_names:
        return dataset
    missing = [c for c in ("question", "answer") if c not in dataset.column_names]
    if missing or (with_steps and "steps" not in dataset.column_names):
        needed = "question, steps, answer" if with_steps else "question, answer"
        raise ValueError(f"LTA-Thinker needs the columns {needed}; the dataset has {dataset.column_names}.")
    return dataset.map(
        lta_format,
        fn_kwargs={"tokenizer": tokenizer, "thought_ids": list(thought_ids), "with_steps": with_steps},
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=f"LTA-Thinker layout ({'with' if with_steps else 'without'} steps)",
    )


def _pad(rows: list[list[int]], value: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            where = slice(width - len(r), width) if left else slice(0, len(r))
            ids[i, where] = torch.tensor(r, dtype=torch.long)
            mask[i, where] = 1
    return ids, mask


class LTACollator:
    """SFTTrainer's collator (input_ids, attention_mask, labels) plus the LTA columns: assistant_input_ids and
    ans_ids padded with the pad id (with their attention masks), thought_index stacked, q_and_step_index padded with
    0 (the card's padding step index)."""

    def __init__(self, base: Callable[[list[dict[str, Any]]], dict[str, Any]], pad_token_id: int):
        self.base = base
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.base([{k: e[k] for k in ("input_ids", "labels") if k in e} for e in examples])
        if all("assistant_input_ids" in e for e in examples):
            batch.update(collate_lta_columns(examples, self.pad_token_id))
        return batch


def collate_lta_columns(examples: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    assistant, assistant_mask = _pad([e["assistant_input_ids"] for e in examples], pad_token_id)
    answers, answer_mask = _pad([e["ans_ids"] for e in examples], pad_token_id)
    steps, _ = _pad([e["q_and_step_index"] for e in examples], 0)
    return {
        "assistant_input_ids": assistant,
        "assistant_attention_mask": assistant_mask,
        "thought_index": torch.tensor([e["thought_index"] for e in examples], dtype=torch.long),
        "q_and_step_index": steps,
        "ans_ids": answers,
        "ans_attention_mask": answer_mask,
    }


def generation_batch(rows: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Rows from `lta_format(..., with_steps=False, with_answer=False)` as a left-padded generation batch (the thought
    span moved right by each row's padding)."""
    input_ids, attention_mask = _pad([r["input_ids"] for r in rows], pad_token_id, left=True)
    width = input_ids.size(1)
    shifted = [dict(r, thought_index=_shift(r["thought_index"], width - len(r["input_ids"]))) for r in rows]
    batch = collate_lta_columns(shifted, pad_token_id)
    return {"input_ids": input_ids, "attention_mask": attention_mask, **batch}


def _shift(index: list[int], by: int) -> list[int]:
    b0, b1, a0, a1 = index
    return [b0 + by, b1 + by, a0, a1]


# --- answers and data ------------------------------------------------------------------------------------------------
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def boxed_answer(text: str) -> str | None:
    """The content of the last \\boxed{...} in `text`, stripped; None without one."""
    found = _BOXED.findall(text)
    return found[-1].strip() if found else None


def gsm8k_row(example: dict[str, Any]) -> dict[str, Any]:
    """A GSM8K-style row (`answer`: reasoning lines then "#### x") as question, steps (one per non-empty line,
    calculator annotations <<...>> removed) and answer."""
    lines = [line.strip() for line in str(example["answer"]).split("\n") if line.strip()]
    final = [line for line in lines if line.startswith("####")]
    if not final:
        raise ValueError(f"a GSM8K answer ends with '#### x'; got {example['answer']!r}")
    steps = [re.sub(r"<<[^>]*>>", "", line) for line in lines if not line.startswith("####")]
    return {"question": example["question"], "steps": steps, "answer": final[-1].removeprefix("####").strip()}


def make_gsm8k_transform() -> Callable[[Any], Any]:
    """The `lta_gsm8k` transform: GSM8K's question/answer columns to LTA's question/steps/answer."""

    def transform(dataset):
        return dataset.map(gsm8k_row, remove_columns=[c for c in dataset.column_names if c != "question"])

    return transform


def build(form: str | None = None, seed: int = 0, n_train: int = 1000, n_test: int = 200):
    """`builtin:lta_steps`: arithmetic word problems (one or two steps, `trl_ext.data.arith`) with question, steps
    ("## Step" bodies), answer, and the same solution as prompt/completion (so plain SFT/LoRA trains on the same
    text: the matched baseline)."""
    from datasets import Dataset, DatasetDict

    from trl_ext.data.arith import problems

    if (form or "sft") != "sft":
        raise ValueError(f"lta_steps comes in the form 'sft', not {form!r}.")
    rows = []
    for p in problems(n_train + n_test, seed):
        steps = [f"{a} {op} {b} = {c}." for a, op, b, c in p.steps]
        answer = str(p.answer)
        rows.append(
            {
                "question": p.question,
                "steps": steps,
                "answer": answer,
                "prompt": [{"role": "user", "content": p.question}],
                "completion": [{"role": "assistant", "content": solution_text(steps, answer)}],
            }
        )
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})
