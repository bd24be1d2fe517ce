"""What every command shares: the common arguments, settings from them, progress bars and Ctrl-C cancellation."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..library import Library
from ..settings import Settings, load_settings


def add_common(
    p: argparse.ArgumentParser, *, encoder: bool = True, json: bool = True, progress: bool = False,
    threads_help: str = "CPU threads for inference (default: all cores; env EDGERET_THREADS)",
) -> None:
    """--library and --threads always; --encoder, --json and --no-progress where the command has them."""
    p.add_argument("--library", type=Path, help="library folder (default: user data dir; env EDGERET_LIBRARY)")
    if encoder:
        p.add_argument("--encoder", help="encoder: a registry name or a model folder (default: the library's own)")
    p.add_argument("--threads", type=int, help=threads_help)
    if json:
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
    if progress:
        add_progress(p)


MAX_COUNT = 100_000  # more results than any screen or re-ranker can use; keeps a typo from allocating gigabytes


def count(text: str) -> int:
    """argparse type for -k and other counts: a whole number from 1 to MAX_COUNT (else exit 2 with a message)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{n} is out of range: give 1 to {MAX_COUNT:,}")
    return n


def add_mllm_args(p: argparse.ArgumentParser) -> None:
    """--vlm/--mmproj/--image-tokens: the MLLM re-ranker's files, for the commands that re-rank with it."""
    p.add_argument("--vlm", help="MLLM: registry name, installed folder, or text-model GGUF (with --mmproj)")
    p.add_argument("--mmproj", help="MLLM projector GGUF, with --vlm PATH")
    p.add_argument("--image-tokens", type=int, help="MLLM image token cap (default: one full tile)")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings(args: argparse.Namespace, base: dict | None = None) -> Settings:
    """Settings with the command line's --library/--encoder/--threads on top (absent options are "not given");
    `base` holds the command's own defaults (see load_settings)."""
    return load_settings(
        base, library=getattr(args, "library", None), encoder=getattr(args, "encoder", None),
        threads=getattr(args, "threads", None),
    )


def open_library(s: Settings, writable: bool = False) -> Library:
    """The library the settings name, with their exact-search size; read-only unless `writable`."""
    return Library(s.library, writable=writable, exact_below=s.exact_below)


def print_status(st: dict, as_json: bool, rows: Iterable[tuple[str, object]]) -> int:
    """A `status` command's output: `st` as JSON, or `rows` then st's failures as lines under aligned labels."""
    if as_json:
        print(json.dumps(st))
        return 0
    lines = [*rows, *(("failed", f"{f['path']}: {f['reason']}") for f in st["failures"])]
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        print(f"{label:<{width}}{value}")
    return 0


def wants_progress(args: argparse.Namespace) -> bool:
    """A bar only for a person at a terminal: not with --no-progress, not under --json, not into a pipe."""
    return not getattr(args, "no_progress", False) and not getattr(args, "json", False) and sys.stderr.isatty()


class Bar:
    """A tqdm bar on stderr, opened on the first report (when the total is known); does nothing when disabled.

    Call it as an image-progress callback, `bar(done, total, path)`, or feed model downloads with `bar.bytes`.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None  # a tqdm bar once opened

    def __call__(self, done: int, total: int, path: str) -> None:
        self._report(done, total, Path(path).name[-30:], unit="img")

    def status(self, done: int, total: int, line: str) -> None:
        """A count with a sentence of its own instead of a file name (token preparation: ready N of M · ETA)."""
        self._report(done, total, line, unit="img")

    def bytes(self, p) -> None:
        """A models.Progress report: bytes over the whole model."""
        self._report(p.done, p.total, p.file[-40:], unit="B", unit_scale=True, unit_divisor=1024, desc=p.model)

    def _report(self, done: int, total: int, label: str, **opts) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, dynamic_ncols=True, file=sys.stderr, **opts)
        bar = self.bar
        bar.total = max(bar.total or 0, total)
        bar.n = done
        bar.set_postfix_str(label, refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextmanager
def cancellation(*signals: int) -> Iterator[threading.Event]:
    """Map Ctrl-C (and any other `signals`) to an Event the library polls; the previous handlers always come back.

    The work keeps what it committed and stops at its next check; the caller returns 130 when the event is set.
    """
    stop = threading.Event()
    previous = {}
    try:
        for s in (signal.SIGINT, *signals):
            previous[s] = signal.signal(s, lambda *_: stop.set())
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def interruptible(show_bar: bool) -> Iterator[tuple[Bar, Callable[[], bool]]]:
    """(progress bar, cancel check) for one long job: Ctrl-C cancels cleanly, the bar closes, handlers come back."""
    bar = Bar(show_bar)
    with cancellation() as stop:
        try:
            yield bar, stop.is_set
        finally:
            bar.close()
