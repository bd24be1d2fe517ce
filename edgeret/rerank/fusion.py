"""λ-fusion of a first-stage similarity with a re-ranker probability, and the ordering shared by all re-rankers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..settings import LAMBDA

NO_OPINION = 0.5  # what a candidate the re-ranker could not judge (decode failure) contributes


def fuse(first_stage: float, p_same: float, lam: float = LAMBDA) -> float:
    """final = λ·first_stage + (1−λ)·P(same); a NaN P (candidate not judged) counts as no opinion (0.5)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be within [0, 1], got {lam}")
    p = NO_OPINION if math.isnan(p_same) else p_same
    return lam * first_stage + (1.0 - lam) * p


def rank(first_stage: Sequence[float], p_same: Mapping[int, float], lam: float = LAMBDA) -> list[tuple[int, float]]:
    """(index, final score) best first; candidates without a P keep their first-stage score alone.

    Ties break on the first-stage score, then on the original index, so the order is deterministic.
    """
    finals = []
    for i, s in enumerate(first_stage):
        final = fuse(s, p_same[i], lam) if i in p_same else s
        finals.append((i, final))
    return sorted(finals, key=lambda t: (-t[1], -first_stage[t[0]], t[0]))
