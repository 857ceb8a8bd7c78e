"""`tq_star_keyword_reward`: a rule-based sequence reward for the demo and tests (the card's "politeness keyword
count"), so decoding-time alignment can be shown offline without a trained reward model."""

from __future__ import annotations

import re

from trl_ext.rewards import reward_function

# Politeness markers; a word counts once per occurrence, case-insensitive, on word boundaries.
POLITE_WORDS = ("please", "thank", "thanks", "glad", "happy", "kind", "sorry", "welcome", "appreciate", "great")


@reward_function(name="tq_star_keyword_reward", max_chars=None)
def keyword_reward(completion: str, keywords: str | list[str] | tuple[str, ...] = POLITE_WORDS, **_) -> float:
    """Occurrences of the keywords in the completion (a comma-separated string or a list)."""
    words = [w.strip() for w in keywords.split(",")] if isinstance(keywords, str) else list(keywords)
    pattern = r"\b(?:" + "|".join(re.escape(w) for w in words if w) + r")\b"
    return float(len(re.findall(pattern, completion, flags=re.IGNORECASE)))
