"""`builtin:ra_tool_dialogues`: multi-turn tool-use dialogues generated in code, for RA-Synergy's tests and demo.

Three fake tools (`get_weather`, `calculator`, `lookup`) and templated user requests. A dialogue has 2-4 assistant
turns: an optional greeting answered in text, one or two requests each answered by a tool call then (after the tool's
result) a templated answer, and an optional thanks. About half the assistant turns are tool calls. Messages are in
the OpenAI format (`tool_calls` with JSON-string `arguments`, `role: "tool"` results).

Forms: `conversations` (messages, tools: the input of `dialogues_to_turns`); `grpo` (one row per assistant turn,
thinking asked for: prompt, gold_type, gold_tool_name, gold_tool_args, gold_answer); `sft` (the same rows with the
direct, no-thinking instruction and the gold turn as `completion`: stage 1 of the recipe). Train: 300 assistant
turns; test: 50 held-out turns (other dialogues, same templates).
"""

from __future__ import annotations

import functools
import json
import random

from datasets import Dataset, DatasetDict

from .transforms import dialogue_turns

FORMS = ("grpo", "sft", "conversations")
TRAIN_TURNS, TEST_TURNS = 300, 50


def _tool(name: str, description: str, **params: str) -> dict:
    properties = {param: {"type": kind} for param, kind in params.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)},
        },
    }


TOOLS = [
    _tool("get_weather", "Current temperature of a city.", city="string", unit="string"),
    _tool(
        "calculator", "Apply op (add, subtract, multiply) to the numbers a and b.", a="number", op="string", b="number"
    ),
    _tool("lookup", "Look a term up in the encyclopedia.", term="string"),
]
CITIES = ["Paris", "Oslo", "Tokyo", "Lima", "Cairo", "Berlin", "Quito", "Seoul", "Perth", "Dakar", "Rome", "Madrid"]
OPS = {"add": ("plus", lambda a, b: a + b), "subtract": ("minus", lambda a, b: a - b)}
OPS["multiply"] = ("times", lambda a, b: a * b)
FACTS = {
    "Hamlet": "a tragedy written by William Shakespeare",
    "Mount Everest": "the highest mountain on Earth",
    "the Nile": "a river in Africa",
    "Marie Curie": "a physicist who won two Nobel Prizes",
    "photosynthesis": "the process plants use to turn light into energy",
    "the Moon": "the only natural satellite of Earth",
    "Python": "a programming language",
    "the Louvre": "an art museum in Paris",
}
GREETINGS = ["Hi!", "Hello there.", "Hey, good morning!"]
GREETING_ANSWER = "Hello! I can check the weather, do arithmetic or look things up. How can I help?"
THANKS = ["Thanks!", "Thank you, that's all.", "Great, thanks."]
THANKS_ANSWER = "You're welcome!"


def _call(name: str, args: dict) -> dict:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}],
    }


def _request(rng: random.Random) -> tuple[str, str, dict, str, str]:
    """(user request, tool, arguments, tool result, final answer)."""
    kind = rng.randrange(3)
    if kind == 0:
        city, unit = rng.choice(CITIES), rng.choice(["C", "F"])
        temp = rng.randint(-5, 35) if unit == "C" else rng.randint(25, 95)
        user = rng.choice(
            [f"What's the weather in {city} in {unit}?", f"Temperature in {city}, in degrees {unit}, please."]
        )
        result = json.dumps({"city": city, "temperature": temp, "unit": unit})
        return user, "get_weather", {"city": city, "unit": unit}, result, f"It is {temp} degrees {unit} in {city}."
    if kind == 1:
        op = rng.choice(sorted(OPS))
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        word, fn = OPS[op]
        user = rng.choice([f"What is {a} {word} {b}?", f"Can you compute {a} {word} {b}?"])
        result = json.dumps({"result": fn(a, b)})
        return user, "calculator", {"a": a, "op": op, "b": b}, result, f"{a} {word} {b} is {fn(a, b)}."
    term = rng.choice(sorted(FACTS))
    user = rng.choice([f"What is {term}?", f"Tell me about {term}."])
    result = json.dumps({"term": term, "summary": FACTS[term]})
    return user, "lookup", {"term": term}, result, f"{term[0].upper() + term[1:]} is {FACTS[term]}."


def dialogue(rng: random.Random) -> list[dict]:
    messages: list[dict] = []
    if rng.random() < 0.3:
        messages += [
            {"role": "user", "content": rng.choice(GREETINGS)},
            {"role": "assistant", "content": GREETING_ANSWER},
        ]
    for _ in range(rng.choice([1, 1, 2])):
        user, name, args, result, answer = _request(rng)
        messages += [
            {"role": "user", "content": user},
            _call(name, args),
            {"role": "tool", "content": result},
            {"role": "assistant", "content": answer},
        ]
    if rng.random() < 0.3:
        messages += [{"role": "user", "content": rng.choice(THANKS)}, {"role": "assistant", "content": THANKS_ANSWER}]
    return messages


def _assistant_turns(messages: list[dict]) -> int:
    return sum(m["role"] == "assistant" for m in messages)


@functools.lru_cache(maxsize=4)
def _dialogues(seed: int) -> tuple[tuple, tuple]:
    rng = random.Random(seed)
    splits: list[list] = [[], []]
    for split, target in zip(splits, (TRAIN_TURNS, TEST_TURNS), strict=True):
        turns = 0
        while turns < target:
            messages = dialogue(rng)
            messages = messages[: _cut(messages, target - turns)]
            split.append(messages)
            turns += _assistant_turns(messages)
    return tuple(map(tuple, splits[0])), tuple(map(tuple, splits[1]))


def _cut(messages: list[dict], turns_left: int) -> int:
    """Length of the prefix of `messages` that ends with its `turns_left`-th assistant turn (all of it if fewer)."""
    seen = 0
    for index, message in enumerate(messages):
        seen += message["role"] == "assistant"
        if seen == turns_left:
            return index + 1
    return len(messages)


def _form(dialogues: tuple, form: str) -> list[dict]:
    tools = json.dumps(TOOLS)
    if form == "conversations":
        return [{"messages": list(messages), "tools": tools} for messages in dialogues]
    thinking = form == "grpo"
    return [
        row
        for messages in dialogues
        for row in dialogue_turns(list(messages), tools, thinking=thinking, with_completion=not thinking)
    ]


def build(form: str = "grpo", seed: int = 0) -> DatasetDict:
    """train (300 assistant turns) / test (50 held-out turns). See the module docstring for the forms."""
    if form not in FORMS:
        raise ValueError(f"builtin:ra_tool_dialogues has the forms {', '.join(FORMS)}, not {form!r}")
    train, test = _dialogues(seed)
    return DatasetDict({"train": Dataset.from_list(_form(train, form)), "test": Dataset.from_list(_form(test, form))})
