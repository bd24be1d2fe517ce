"""The pair-judging questions: the paper's 0/1 "object" prompt and a Yes/No variant.

Kept short on purpose: the question follows the candidate image, so every token of it is decoded once per
candidate (about 20 tokens here against 64-128 image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PairPrompt:
    """A question asked after the two images, and the answer words whose probabilities are compared."""

    name: str
    question: str
    positive: str
    negative: str


PROMPTS = {
    "object01": PairPrompt(
        "object01",
        "Do these two images show the exact same object instance, not just the same kind of object? "
        "Answer 1 for yes or 0 for no.",
        "1",
        "0",
    ),
    "yesno": PairPrompt(
        "yesno",
        "Do these two images show the exact same object instance, not just the same kind of object? "
        "Answer Yes or No.",
        "yes",
        "no",
    ),
}


def get_prompt(name: str) -> PairPrompt:
    """Look a prompt up by name; ValueError lists the known ones."""
    try:
        return PROMPTS[name]
    except KeyError:
        raise ValueError(f"unknown re-rank prompt {name!r}; known: {', '.join(sorted(PROMPTS))}") from None
