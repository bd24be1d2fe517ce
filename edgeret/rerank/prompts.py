"""The pair-judging prompts: the paper's 0/1 "object" question and a Yes/No variant.

A prompt has two texts. The instruction comes before the query image, so it is evaluated once per query with the
query prefix and may say everything the model needs to know. The question follows the candidate image, so every token
of it is decoded once per candidate: it is kept to a few words (with the chat template's tail and the image
wrappers, about 20 text tokens against 128 image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

_INSTRUCTION = ("Two photos follow: a query, then a candidate. Decide whether they show the exact same object "
                "instance, not just the same kind of object.")


@dataclass(frozen=True)
class PairPrompt:
    """Instruction (before both images), question (after them) and the answer words whose probabilities compare."""

    name: str
    instruction: str
    question: str
    positive: str
    negative: str


PROMPTS = {
    "object01": PairPrompt("object01", _INSTRUCTION, "Same object instance? Answer 1 or 0.", "1", "0"),
    "yesno": PairPrompt("yesno", _INSTRUCTION, "Same object instance? Answer Yes or No.", "yes", "no"),
}


# Text queries: no query image; the description sits in the instruction, so the per-candidate tail stays short.
TEXT_PROMPT = PairPrompt("text", "Description: {text}\nDoes the photo below show what the description says?",
                         "Answer Yes or No.", "yes", "no")


def text_prompt(description: str, marker: str) -> PairPrompt:
    """TEXT_PROMPT for one description (whitespace collapsed, the media marker removed); ValueError if empty."""
    text = " ".join(description.replace(marker, " ").split())
    if not text:
        raise ValueError("the text query is empty")
    return replace(TEXT_PROMPT, instruction=TEXT_PROMPT.instruction.replace("{text}", text))


# Boxed queries: the query image is the region the user drew (with a small margin); say so before the images.
_BOXED_INSTRUCTION = ("Two photos follow: a query, then a candidate. The query is cropped to a box the user drew "
                      "around one object: that object is the one meant, not its background. Decide whether the "
                      "candidate shows that exact same object instance, not just the same kind of object.")


def boxed_prompt(prompt: PairPrompt) -> PairPrompt:
    """`prompt` for a boxed query: the same question and answers, the instruction naming the boxed object."""
    return replace(prompt, name=f"{prompt.name}+box", instruction=_BOXED_INSTRUCTION)


def get_prompt(name: str) -> PairPrompt:
    """Look a prompt up by name; ValueError lists the known ones."""
    try:
        return PROMPTS[name]
    except KeyError:
        raise ValueError(f"unknown re-rank prompt {name!r}; known: {', '.join(sorted(PROMPTS))}") from None
