"""Retrieval metrics as the instance-retrieval literature defines them."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet


def average_precision(ranked: Sequence[str], positives: AbstractSet[str], k: int | None = None) -> float:
    """AP of one ranking (the query already removed). With `k`, AP@k normalised by min(k, |positives|).

    A query without positives has no defined AP: callers skip it (this returns NaN).
    """
    if not positives:
        return float("nan")
    ranked = ranked[:k] if k else ranked
    hits, total = 0, 0.0
    for i, item in enumerate(ranked, 1):
        if item in positives:
            hits += 1
            total += hits / i
    denom = min(k, len(positives)) if k else len(positives)
    return total / denom


def recall_at(ranked: Sequence[str], positives: AbstractSet[str], k: int) -> float:
    """1 if any positive is in the top k, else 0 (the R@k of instance retrieval papers)."""
    return float(any(item in positives for item in ranked[:k]))


def precision_at(ranked: Sequence[str], positives: AbstractSet[str], k: int) -> float:
    return sum(item in positives for item in ranked[:k]) / k
