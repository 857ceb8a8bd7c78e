"""`builtin:tool_calls`: single-request tool-use trajectories generated in code, for TL-Training's demo and tests.

Five fake tools whose names overlap in pairs of prefixes (`get_weather` / `get_wind` / `get_time`,
`search_web` / `search_news`). Each trajectory: system (tool list), user request, assistant call, tool output,
assistant answer. In 10% of them the first call is corrupted (a confusable tool, or a misspelt argument) and the tool
answers with an error; the assistant then retries correctly. Calls are written `name(arg='value')`: single-quoted
values are what the official IRM reward parses.

Forms: `conversations` (messages, tools, gold_call: the input of `tl_mae_split`), `sft` (MAE-split per-turn
prompt/completion samples with the failed turns dropped: what PKT trains on), `grpo` (prompt = system + user,
tools, gold_call: the first call).
"""

from __future__ import annotations

import functools
import json
import random

from datasets import Dataset, DatasetDict

from .mae import tl_mae_split

TRAIN_SIZE, TEST_SIZE, CORRUPT_RATE = 300, 100, 0.10


def _tool(name: str, description: str, **params: str) -> dict:
    """An OpenAI-style function schema whose string parameters (name -> description) are all required."""
    properties = {param: {"type": "string", "description": text} for param, text in params.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)},
        },
    }


TOOLS = [
    _tool("get_weather", "Current weather of a city.", city="City name.", unit="'celsius' or 'fahrenheit'."),
    _tool("get_wind", "Current wind speed of a city.", city="City name."),
    _tool("get_time", "Local time of a city.", city="City name."),
    _tool("search_web", "Web search.", query="Search terms.", limit="Number of results."),
    _tool("search_news", "News articles about a topic.", topic="Topic."),
]
CITIES = [
    "Paris",
    "Oslo",
    "Tokyo",
    "Lima",
    "Cairo",
    "Berlin",
    "Quito",
    "Seoul",
    "Perth",
    "Dakar",
    "Hanoi",
    "Rome",
    "Madrid",
    "Boston",
    "Delhi",
    "Nairobi",
]
QUERIES = [
    "python tutorials",
    "cheap flights",
    "banana bread recipe",
    "chess openings",
    "solar panels",
    "running shoes",
    "jazz history",
    "used bikes",
    "tax forms",
    "yoga classes",
    "guitar chords",
    "tea shops",
]
TOPICS = ["elections", "football", "space", "climate", "markets", "music", "science", "health", "movies", "travel"]
# A confusable wrong tool and a misspelt argument for the corrupted first calls.
CONFUSABLE = {
    "get_weather": "get_wind",
    "get_wind": "get_weather",
    "get_time": "get_weather",
    "search_web": "search_news",
    "search_news": "search_web",
}


def system_prompt() -> str:
    lines = []
    for tool in TOOLS:
        spec = tool["function"]
        args = ", ".join(spec["parameters"]["properties"])
        lines.append(f"- {spec['name']}({args}): {spec['description']}")
    return (
        "You can call these tools. Reply with one call like name(arg='value'), or with the answer once the "
        "tool has replied.\n" + "\n".join(lines)
    )


def format_call(name: str, args: dict[str, str]) -> str:
    return f"{name}(" + ", ".join(f"{k}='{v}'" for k, v in args.items()) + ")"


def _request(rng: random.Random) -> tuple[str, str, dict[str, str], str]:
    kind = rng.randrange(5)
    if kind == 0:
        city, unit = rng.choice(CITIES), rng.choice(["celsius", "fahrenheit"])
        temp = rng.randint(-5, 35)
        return (
            rng.choice([f"What's the weather in {city} in {unit}?", f"Weather for {city}, please, in {unit}."]),
            "get_weather",
            {"city": city, "unit": unit},
            f"It is {temp} degrees {unit} in {city}.",
        )
    if kind == 1:
        city = rng.choice(CITIES)
        return (
            rng.choice([f"How windy is it in {city}?", f"Wind speed in {city} now?"]),
            "get_wind",
            {"city": city},
            f"The wind in {city} blows at {rng.randint(2, 60)} km/h.",
        )
    if kind == 2:
        city = rng.choice(CITIES)
        return (
            rng.choice([f"What time is it in {city}?", f"Local time in {city}?"]),
            "get_time",
            {"city": city},
            f"It is {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} in {city}.",
        )
    if kind == 3:
        query, limit = rng.choice(QUERIES), str(rng.randint(1, 9))
        return (
            rng.choice(
                [f"Search the web for {query}, top {limit} results.", f"Find {limit} web pages about {query}."]
            ),
            "search_web",
            {"query": query, "limit": limit},
            f"Here are {limit} results about {query}.",
        )
    topic = rng.choice(TOPICS)
    return (
        rng.choice([f"Any news about {topic}?", f"Show me the latest {topic} news."]),
        "search_news",
        {"topic": topic},
        f"Here are today's headlines about {topic}.",
    )


def _trajectory(rng: random.Random, corrupt: bool) -> dict:
    request, name, args, answer = _request(rng)
    gold = format_call(name, args)
    messages = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": request}]
    if corrupt:
        if rng.random() < 0.5:
            wrong, error = (
                format_call(CONFUSABLE[name], args),
                rng.choice(
                    [
                        f"ConnectionError: {CONFUSABLE[name]} service unavailable",
                        f'{{"error": "Invalid API call to {CONFUSABLE[name]}"}}',
                    ]
                ),
            )
        else:
            first = next(iter(args))
            bad = {("town" if first == "city" else first + "s") if k == first else k: v for k, v in args.items()}
            wrong = format_call(name, bad)
            error = f"TypeError: {name}() got an unexpected keyword argument '{next(iter(bad))}'"
        messages += [{"role": "assistant", "content": wrong}, {"role": "function", "content": error}]
    output = json.dumps({"status": "ok", "result": answer})
    messages += [
        {"role": "assistant", "content": gold},
        {"role": "function", "content": output},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages, "tools": json.dumps(TOOLS), "gold_call": gold, "corrupted": corrupt}


@functools.lru_cache(maxsize=4)
def _trajectories(seed: int) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    rng = random.Random(seed)
    rows = [_trajectory(rng, corrupt=rng.random() < CORRUPT_RATE) for _ in range(TRAIN_SIZE + TEST_SIZE)]
    return tuple(rows[:TRAIN_SIZE]), tuple(rows[TRAIN_SIZE:])


def _form(rows: tuple[dict, ...], form: str) -> list[dict]:
    if form == "conversations":
        return [dict(r) for r in rows]
    if form == "grpo":
        return [{"prompt": r["messages"][:2], "tools": r["tools"], "gold_call": r["gold_call"]} for r in rows]
    return [s for r in rows for s in tl_mae_split(dict(r))]


def build(form: str = "sft", seed: int = 0) -> DatasetDict:
    """train (300 trajectories) / test (100). See the module docstring for the forms."""
    if form not in ("sft", "conversations", "grpo"):
        raise ValueError(f"builtin:tool_calls has the forms sft, conversations and grpo, not {form!r}")
    train, test = _trajectories(seed)
    return DatasetDict({"train": Dataset.from_list(_form(train, form)), "test": Dataset.from_list(_form(test, form))})


def call_verdict(text: str, gold: str) -> tuple[bool, bool]:
    """(the tool name is the gold's, name and argument values are the gold's) for one generated call, strictly
    parsed; an unparseable call is wrong on both."""
    from .irm import ParseError, _strict_parse

    gold_name, gold_args = _strict_parse(gold)
    try:
        name, args = _strict_parse(text.strip())
    except (ParseError, IndexError):
        return False, False
    return name == gold_name, name == gold_name and args == gold_args


def call_accuracy(completions, gold_calls) -> dict[str, float]:
    """Tool-name accuracy and exact-call accuracy (name and argument values, strict parsing) of generated calls."""
    verdicts = [call_verdict(text, gold) for text, gold in zip(completions, gold_calls, strict=True)]
    n = max(len(gold_calls), 1)
    return {
        "tool_name_accuracy": sum(name for name, _ in verdicts) / n,
        "exact_call_accuracy": sum(exact for _, exact in verdicts) / n,
    }


def _first_line(candidate) -> str:
    return str(candidate).strip().split("\n")[0]


def first_call_name_judge(prompt, candidate: str, gold: str) -> bool:
    """A judge (`trl_ext.evaluation.judges`' shape) for compare: the answer's first line calls the gold tool."""
    return call_verdict(_first_line(candidate), gold)[0]


def first_call_exact_judge(prompt, candidate: str, gold: str) -> bool:
    """A judge for compare: the answer's first line is the gold call (name and argument values)."""
    return call_verdict(_first_line(candidate), gold)[1]
