"""Plain verdicts from a re-ranker's P(same): "Same object", "Maybe" or "Different".

The defaults come from the devset measured with the `sv` re-ranker (scripts/verdict_thresholds.py, figures in
docs/evaluation.md): at P ≥ 0.8 nearly every candidate is truly the same object, below 0.2 nearly every candidate is
truly another one, and the band between holds the pairs a person should look at. Both are user settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .settings import VERDICT_DIFFERENT as DIFFERENT_BELOW
from .settings import VERDICT_SAME as SAME_AT

__all__ = ["DIFFERENT_BELOW", "SAME_AT", "Thresholds", "Verdict", "matches_end"]


class Verdict(Enum):
    SAME = "Same object"
    MAYBE = "Maybe"
    DIFFERENT = "Different"
    UNCHECKED = "Not checked yet"  # a re-ranker runs but has not judged this photo
    UNJUDGED = "Could not check"  # the re-ranker could not read the photo (P is NaN)


@dataclass(frozen=True)
class Thresholds:
    """`same`: the lowest P(same) called "Same object"; `different`: P(same) below it is "Different"."""

    same: float = SAME_AT
    different: float = DIFFERENT_BELOW

    def __post_init__(self):
        if not 0.0 <= self.different <= self.same <= 1.0:
            raise ValueError(f"need 0 ≤ different ({self.different}) ≤ same ({self.same}) ≤ 1")

    def verdict(self, p_same: float | None) -> Verdict:
        if p_same is None:
            return Verdict.UNCHECKED
        if math.isnan(p_same):
            return Verdict.UNJUDGED
        if p_same >= self.same:
            return Verdict.SAME
        return Verdict.DIFFERENT if p_same < self.different else Verdict.MAYBE


def matches_end(p_values: Sequence[float | None], thresholds: Thresholds) -> int | None:
    """Where the matches end in a ranking: the position after the last "Same object" (0 when there is none);
    None while any photo is unchecked, since the boundary can still move."""
    if not p_values or any(p is None for p in p_values):
        return None
    same = [i for i, p in enumerate(p_values) if thresholds.verdict(p) is Verdict.SAME]
    return same[-1] + 1 if same else 0
