"""`builtin:redone_sns`: the card's three toy SNS "domain" tasks and a pool of generic chat pairs, generated from
templates with a fixed seed (no download).

Tasks (column `task`): `hashtags` (extract a post's hashtags), `sentiment` (label a post positive / negative /
neutral), `tone_reply` (reply to a comment cheerfully in at most 20 words, ending with "Cheers!"). `answer` is what
the task's rule reward (`redone_sns_reward`) grades against; the SFT form adds a demonstration `completion`.
General chat pairs (`general`, task "general") are the data mixed in at stage 2 against forgetting.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from .rewards import MAX_REPLY_WORDS, SIGN_OFF

FORMS = ("rl", "sft", "general")
COLUMNS = {
    "rl": ("task", "prompt", "answer"),
    "sft": ("task", "prompt", "completion", "answer"),
    "general": ("task", "prompt", "completion"),
}
TASKS = ("hashtags", "sentiment", "tone_reply")

_TOPICS = [
    "coffee",
    "hiking",
    "concert",
    "sunset",
    "recipe",
    "marathon",
    "bookclub",
    "puppy",
    "roadtrip",
    "garden",
    "gaming",
    "skincare",
    "thrift",
    "yoga",
    "ramen",
    "museum",
    "beach",
    "study",
    "vintage",
    "camping",
]
_SUBJECTS = [
    "my new cafe find",
    "this morning's run",
    "the weekend market",
    "our team dinner",
    "the new phone",
    "today's commute",
    "the film last night",
    "my first pottery class",
    "the hotel stay",
    "the city park",
]
_MOODS = {
    "positive": ["absolutely loved", "had a wonderful time with", "highly recommend", "can't stop smiling about"],
    "negative": ["was really disappointed by", "regret spending money on", "had an awful time with", "hated"],
    "neutral": ["just tried", "spent an hour on", "finally checked out", "visited"],
}
_COMMENTS = [
    "Where did you buy that jacket?",
    "This photo made my day.",
    "Is the place open on Sundays?",
    "How long did the hike take?",
    "Can you share the recipe?",
    "Your cat looks so sleepy here.",
    "Which camera do you use?",
    "I want to go there too!",
    "What song is playing in the video?",
    "Did it rain the whole time?",
]
_REPLIES = [
    "Thanks so much, so glad you liked it",
    "Great question, I will post the details soon",
    "Yes, you should totally go",
    "Happy to share, check my next post",
    "Aw, thank you for the kind words",
]
_GENERAL = [
    (
        "What is the capital of {}?",
        "The capital of {} is {}.",
        [
            ("France", "Paris"),
            ("Japan", "Tokyo"),
            ("Italy", "Rome"),
            ("Canada", "Ottawa"),
            ("Egypt", "Cairo"),
            ("Spain", "Madrid"),
            ("Kenya", "Nairobi"),
            ("Peru", "Lima"),
            ("Norway", "Oslo"),
            ("India", "New Delhi"),
        ],
    ),
    (
        "Give one synonym of '{}'.",
        "A synonym of '{}' is '{}'.",
        [
            ("happy", "joyful"),
            ("big", "large"),
            ("fast", "quick"),
            ("smart", "clever"),
            ("tired", "weary"),
            ("begin", "start"),
            ("angry", "furious"),
            ("small", "tiny"),
            ("calm", "peaceful"),
            ("brave", "bold"),
        ],
    ),
    ("What is {} plus {}?", "{} plus {} is {}.", None),
    (
        "Translate '{}' into French.",
        "'{}' in French is '{}'.",
        [
            ("hello", "bonjour"),
            ("thank you", "merci"),
            ("cat", "chat"),
            ("water", "eau"),
            ("house", "maison"),
            ("friend", "ami"),
            ("book", "livre"),
            ("sun", "soleil"),
            ("bread", "pain"),
            ("night", "nuit"),
        ],
    ),
]


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def task_row(task: str, rng: random.Random) -> dict:
    """One row of `task`: prompt, the graded `answer` and a demonstration `completion`."""
    if task == "hashtags":
        tags = ["#" + t for t in rng.sample(_TOPICS, rng.randint(1, 3))]
        words = rng.choice(_SUBJECTS).split() + tags
        post = " ".join([words[0]] + [w for w in words[1:]])
        prompt = f"Extract the hashtags from this post, separated by spaces.\nPost: {post}"
        return {"task": task, "prompt": _user(prompt), "answer": " ".join(tags), "completion": " ".join(tags)}
    if task == "sentiment":
        label = rng.choice(list(_MOODS))
        post = f"I {rng.choice(_MOODS[label])} {rng.choice(_SUBJECTS)}."
        prompt = f"Label the sentiment of this post as positive, negative or neutral.\nPost: {post}"
        return {"task": task, "prompt": _user(prompt), "answer": label, "completion": label}
    comment = rng.choice(_COMMENTS)
    prompt = (
        f"Reply to this comment in a cheerful tone, in at most {MAX_REPLY_WORDS} words, ending with "
        f"'{SIGN_OFF}'.\nComment: {comment}"
    )
    return {
        "task": task,
        "prompt": _user(prompt),
        "answer": SIGN_OFF,
        "completion": f"{rng.choice(_REPLIES)}! {SIGN_OFF}",
    }


def general_rows(n: int = 200, seed: int = 0, held_out: bool = False) -> list[dict]:
    """`n` generic chat pairs (capitals, synonyms, sums, translations), the same for the same seed. Train pairs use
    the first 8 facts of each template and sums of numbers below 50; `held_out` pairs the last 2 facts and numbers from
    50 up, so a held-out general NLL is not taught by the mixed-in train pairs."""
    rng = random.Random(seed + int(held_out))
    low, high = (50, 99) if held_out else (2, 49)
    rows = []
    for i in range(n):
        question, reply, pairs = _GENERAL[i % len(_GENERAL)]
        if pairs is None:
            a, b = rng.randint(low, high), rng.randint(low, high)
            prompt, completion = question.format(a, b), reply.format(a, b, a + b)
        else:
            facts = pairs[8:] if held_out else pairs[:8]
            x, y = facts[(i // len(_GENERAL)) % len(facts)]
            prompt, completion = question.format(x), reply.format(x, y)
        rows.append({"task": "general", "prompt": _user(prompt), "completion": _assistant(completion)})
    return rows


def build(form: str = "rl", seed: int = 0, n_train: int = 120, n_test: int = 30, n_general: int = 200) -> DatasetDict:
    """Train and test splits in the shape of `form`: per task `n_train` / `n_test` rows (tasks interleaved), or
    `n_general` chat pairs (20% as test, on facts and numbers the train pairs do not use) for `general`."""
    if form not in FORMS:
        raise ValueError(f"redone_sns has no form {form!r}; available: {', '.join(FORMS)}")
    if form == "general":
        n_test = n_general // 5
        train, test = general_rows(n_general - n_test, seed), general_rows(n_test, seed, held_out=True)
        return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
    rng = random.Random(seed + 1)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [task_row(task, rng) for _ in range(n) for task in TASKS]
        for row in rows:
            row["completion"] = _assistant(row["completion"])
        splits[split] = Dataset.from_list([{k: row[k] for k in COLUMNS[form]} for row in rows])
    return DatasetDict(splits)
