"""Preparing the re-ranker's visual tokens ahead of queries: which photos, in which order, and how far along.

A photo's vision-encoder run (seconds on a laptop CPU) is what makes a cold re-rank slow; with its tokens stored,
judging it costs only the language model. `prepare` encodes the photos that lack tokens one at a time, each stored
in its own transaction: a killed run loses only the photo in flight, and the next run carries on with the rest.

Orders: "neighbours" (the default) first encodes the photos that appear most often in other photos' first-stage
top-k, the likeliest re-rank candidates (measured with scripts/prepare_order.py, docs/performance.md); "path" goes
in catalog order, "newest" by file time, newest first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import DecodeError, UsageError
from .settings import ENV_PREPARE_PRIORITY, PREPARE_ORDER, PREPARE_PRIORITY, K, env

log = logging.getLogger(__name__)

ORDERS = ("neighbours", "path", "newest")
PACE_WEIGHT = 0.2  # weight of the newest photo in the moving average of seconds per photo


@dataclass(frozen=True)
class PrepareStatus:
    """How far preparation is: `ready` of `total` library photos have stored tokens.

    state: "running", "paused", "done" (nothing left) or "stopped"; eta_s: seconds to go at the recent pace,
    None until a photo has been timed.
    """

    ready: int
    total: int
    state: str = "running"
    eta_s: float | None = None
    path: str | None = None  # the photo just prepared

    def text(self) -> str:
        """The status line the app and the CLI show: "Re-ranking ready for 120 of 1,000 photos · ETA 42 min"."""
        line = f"Re-ranking ready for {self.ready:,} of {self.total:,} photos"
        if self.state == "paused":
            return line + " · paused"
        if self.state == "running" and self.eta_s is not None and self.ready < self.total:
            return line + f" · ETA {format_duration(self.eta_s)}"
        return line

    def as_dict(self) -> dict:
        return {"ready": self.ready, "total": self.total, "state": self.state, "eta_s": self.eta_s,
                "path": self.path}


def format_duration(seconds: float) -> str:
    """1 h 05 min, 12 min, 40 s: coarse, for an estimate."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Pace:
    """Seconds per photo as a moving average, so the ETA follows the machine's current speed."""

    def __init__(self):
        self.seconds: float | None = None

    def add(self, seconds: float) -> None:
        self.seconds = seconds if self.seconds is None else (1 - PACE_WEIGHT) * self.seconds + PACE_WEIGHT * seconds

    def eta(self, left: int) -> float | None:
        return None if self.seconds is None else self.seconds * left


# ---------------------------------------------------------------------------------------------------- order
def neighbour_counts(library, k: int = K) -> dict[int, int]:
    """How often each photo is in another photo's first-stage top-k (its in-degree in the k-NN graph)."""
    from .duplicates import _usearch_for, knn

    keys, matrix = library.catalog.vectors()
    if len(keys) < 2:
        return {int(key): 0 for key in keys}
    nbr, _ = knn(matrix, k, _usearch_for(library, keys, matrix), keys)
    counts = np.bincount(nbr[nbr >= 0].ravel(), minlength=len(keys))
    return {int(key): int(c) for key, c in zip(keys, counts, strict=True)}


def ordered(library, photos: list[tuple[int, str]], order: str = PREPARE_ORDER, k: int = K) -> list[tuple[int, str]]:
    """`photos` (key, path) in preparation order (ties and unknown photos keep catalog order)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}: choose {', '.join(ORDERS)}")
    if order == "path":
        return list(photos)
    if order == "newest":
        details = library.catalog.details()
        return sorted(photos, key=lambda kp: -(details.get(kp[0], (None, 0, 0))[2]))
    counts = neighbour_counts(library, k)
    return sorted(photos, key=lambda kp: -counts.get(kp[0], 0))


def pending(library, store, order: str = PREPARE_ORDER, photos: list[tuple[int, str]] | None = None
            ) -> list[tuple[int, str]]:
    """The library photos (or of `photos`, when read already) without stored tokens, in preparation order."""
    stored = store.keys()
    photos = library.photos() if photos is None else photos
    return ordered(library, [(key, p) for key, p in photos if key not in stored], order)


# ----------------------------------------------------------------------------------------------------- the loop
def prepare(
    library,
    reranker,
    *,
    order: str = PREPARE_ORDER,
    limit: int | None = None,
    progress: Callable[[PrepareStatus], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    paused: Callable[[], bool] | None = None,
) -> int:
    """Encode and store the visual tokens of the photos that lack them (at most `limit`); returns how many.

    `reranker` is an MllmPairReranker (edgeret.rerankers.open_mllm). While paused() is true the loop waits
    between photos; cancel() stops it there. A photo that no longer decodes is skipped (the indexer reports it).
    """
    store, pace = reranker.store, Pace()
    photos = library.photos()
    todo = pending(library, store, order, photos)
    total = len(photos)
    ready, everything = total - len(todo), len(todo)
    todo = todo[:limit] if limit is not None else todo
    done = 0

    def report(state: str, path: str | None = None) -> None:
        if progress is not None:
            progress(PrepareStatus(ready, total, state, pace.eta(len(todo) - done), path))

    report("running")
    for key, path in todo:
        if _wait_while_paused(paused, cancel, lambda: report("paused")):
            report("stopped")
            return done
        if key in store:  # prepared meanwhile by a query (or another preparer)
            ready, done = ready + 1, done + 1
            report("running", path)
            continue
        t = time.perf_counter()
        try:
            reranker.encode_photo(key, path)
            ready += 1
        except DecodeError as e:
            log.info("visual tokens: %s skipped: %s", path, e)
        done += 1
        pace.add(time.perf_counter() - t)
        report("running", path)
    report("done" if done == everything else "stopped")
    return done


def _wait_while_paused(paused, cancel, on_pause: Callable[[], None]) -> bool:
    """Block while paused() holds; True when cancel() asks to stop."""
    told = False
    while paused is not None and paused():
        if cancel is not None and cancel():
            return True
        if not told:
            on_pause()
            told = True
        time.sleep(0.1)
    return cancel is not None and cancel()


PRIORITIES = ("idle", "low", "normal")


def lower_priority(level: str | None = None) -> str:
    """Lower the calling thread's CPU priority (threads it starts later inherit it); returns the level applied.

    "idle": only CPU time nobody else wants (Linux SCHED_IDLE: any normal thread takes the core at once) plus the
    highest nice value; "low": the nice value alone; "normal": unchanged. Default: EDGERET_PREPARE_PRIORITY, else
    PREPARE_PRIORITY.
    """
    level = level or env(ENV_PREPARE_PRIORITY) or PREPARE_PRIORITY
    if level not in PRIORITIES:
        raise UsageError(f"{ENV_PREPARE_PRIORITY}={level!r}: choose {', '.join(PRIORITIES)}")
    if level == "normal":
        return level
    if level == "idle":
        with contextlib.suppress(AttributeError, OSError):  # not Linux: the nice value alone
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    try:
        os.nice(19)
    except (AttributeError, OSError):  # Windows has no nice(); the work still runs, at normal priority
        log.info("could not lower the preparation's CPU priority on this system")
    return level
