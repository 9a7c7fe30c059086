"""Deterministic random-word prompts of roughly N tokens, without calling a tokenizer.

Short common words are one token each in most BPE vocabularies (including the demo models'
tokenizer, trained on Python sources), so ``n`` words with a leading space give about ``n``
tokens. Each request gets its own word sequence so prefix caches do not flatter a server.
"""

from __future__ import annotations

import random

WORDS: tuple[str, ...] = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "for",
    "on",
    "as",
    "with",
    "by",
    "this",
    "that",
    "not",
    "be",
    "are",
    "from",
    "or",
    "an",
    "if",
    "at",
    "return",
    "self",
    "value",
    "name",
    "data",
    "list",
    "file",
    "path",
    "line",
    "type",
    "object",
    "string",
    "number",
    "time",
    "error",
    "result",
    "key",
    "test",
    "class",
    "function",
    "default",
    "true",
    "false",
    "none",
    "set",
    "get",
    "new",
    "one",
    "all",
    "can",
    "use",
    "used",
    "when",
    "will",
    "should",
    "must",
    "may",
    "have",
    "has",
    "then",
    "else",
    "each",
    "first",
    "last",
    "next",
    "other",
    "more",
    "only",
    "also",
    "into",
    "out",
    "up",
    "so",
    "no",
    "but",
    "we",
    "you",
    "they",
    "which",
    "there",
    "here",
    "what",
    "how",
    "where",
    "why",
)


def make_prompt(num_tokens: int, rng: random.Random) -> str:
    """About ``num_tokens`` tokens of random common words."""
    if num_tokens < 1:
        raise ValueError("num_tokens must be >= 1")
    return " ".join(rng.choice(WORDS) for _ in range(num_tokens))


def make_prompts(count: int, num_tokens: int, seed: int = 0) -> list[str]:
    """``count`` distinct prompts, the same for the same seed."""
    rng = random.Random(seed)
    return [make_prompt(num_tokens, rng) for _ in range(count)]
