"""Keep a library current: follow file-system changes in its roots (watchdog) and apply them in batches.

Events only mark the library dirty; a worker thread waits until the folders have been quiet for `quiet` seconds
(or `max_delay` after the first unapplied event, so a long copy is indexed as it goes) and then runs one
`Library.index()`, which commits per batch, detects moves by content hash (row id, vector and visual tokens stay)
and removes deleted photos. A copy of 10,000 files thus costs a few index runs, not 10,000.

The library's write lock is taken per run, not held while idle, so `edgeret index` can run meanwhile; when another
writer holds it, the run is retried `retry` seconds later with the changes kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EdgeretError, LibraryBusy, LibraryError
from .library import Library
from .scan import is_image_name
from .settings import WATCH_MAX_DELAY, WATCH_QUIET

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

    from .encoders import ImageEncoder

log = logging.getLogger(__name__)

# Events that change what a folder holds; "opened" and "closed_no_write" are left out on purpose: the indexer's own
# reads would otherwise wake the watcher forever.
RELEVANT = frozenset({"created", "modified", "moved", "deleted", "closed"})


@dataclass
class Batch:
    """One applied batch: how many events it covered and what the index run did."""

    events: int
    paths: list[str]
    report: dict = field(default_factory=dict)
    seconds: float = 0.0
    applied_at: float = 0.0


class Watcher:
    """Follow a library's roots and index changes in batches; `start()`/`stop()`, or use as a context manager.

    `library` is a library folder (the watcher opens it writable for each run) or an open writable Library that
    the caller owns (e.g. the GUI's); then `mutex`, if given, is held around each run.
    """

    def __init__(
        self,
        library: Path | str | Library,
        *,
        roots: Sequence[Path | str] | None = None,
        encoder_spec: str | None = None,
        threads: int = 2,
        quiet: float = WATCH_QUIET,
        max_delay: float = WATCH_MAX_DELAY,
        retry: float = 2.0,
        catch_up: bool = True,
        exact_below: int | None = None,
        mutex: threading.Lock | None = None,
        on_batch: Callable[[Batch], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ):
        # a Library is the caller's (used as it is); a path: the watcher opens the library for each batch
        self._library = library if isinstance(library, Library) else None
        self.path = library.path if isinstance(library, Library) else Path(library).expanduser().resolve()
        self._roots = [Path(r).expanduser().resolve() for r in roots] if roots is not None else None
        self.encoder_spec, self.threads = encoder_spec, threads
        self.quiet, self.max_delay, self.retry = quiet, max_delay, retry
        self.exact_below = exact_below
        self.mutex = mutex
        self.on_batch, self.on_error, self.progress = on_batch, on_error, progress
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._events = 0
        self._paths: set[str] = set()
        self._first = self._last = 0.0
        self._dirty = catch_up  # changes made while nobody watched are picked up by the first run
        self._running = False
        self._encoder: ImageEncoder | None = None
        self._observer: BaseObserver | None = None
        self._watched: dict[Path, Any] = {}
        self._thread: threading.Thread | None = None
        self.batches = 0

    # lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> Watcher:
        from watchdog.observers import Observer

        self._observer = observer = Observer()
        self._sync_roots()
        observer.start()
        if self._dirty:
            self._first = self._last = time.monotonic() - self.quiet  # catch up without waiting
        self._thread = threading.Thread(target=self._loop, name="edgeret-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop watching; an index run in progress is cancelled after its current batch (committed work stays)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def roots(self) -> list[Path]:
        return list(self._watched)

    @property
    def idle(self) -> bool:
        """No change waiting and no run in progress."""
        with self._cond:
            return not self._dirty and not self._running

    def wait_idle(self, timeout: float) -> bool:
        """Block until idle (True) or `timeout` seconds pass (False); meant for tests and scripts."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._dirty or self._running:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # events -----------------------------------------------------------------------------------------------------
    def _relevant(self, path: str, is_dir: bool) -> bool:
        p = Path(path)
        if p == self.path or self.path in p.parents:
            return False  # the library's own files (catalog, index) when it lives inside a root
        if p.name.startswith("."):
            return False  # hidden and partial files; scan() skips them too
        return is_dir or is_image_name(p.name)

    def _on_event(self, event) -> None:
        if event.event_type not in RELEVANT:
            return
        if event.is_directory and event.event_type in ("modified", "closed"):
            return  # a folder's mtime changes with every file event: the file events already count
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        paths = [p if isinstance(p, str) else p.decode() for p in paths if p]
        if not any(self._relevant(p, event.is_directory) for p in paths):
            return
        now = time.monotonic()
        with self._cond:
            if not self._dirty:
                self._first = now
            self._dirty = True
            self._last = now
            self._events += 1
            if len(self._paths) < 1000:  # for reporting only: the index run rescans the roots anyway
                self._paths.update(paths)
            self._cond.notify_all()

    # the worker -------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set():
                    if self._dirty:
                        now = time.monotonic()
                        due = min(self._last + self.quiet, self._first + self.max_delay)
                        if now >= due:
                            break
                        self._cond.wait(due - now)
                    else:
                        self._cond.wait()
                if self._stop.is_set():
                    return
                events, paths = self._events, sorted(self._paths)
                self._events, self._paths, self._dirty, self._running = 0, set(), False, True
            try:
                self._apply(events, paths)
            except LibraryBusy:
                log.info("library busy; retrying in %.1fs", self.retry)
                self._redo(events, paths, delay=self.retry)
            except EdgeretError as e:  # a broken model or library: report, keep watching, try again later
                log.warning("watch: %s", e)
                if self.on_error:
                    self.on_error(e)
                self._redo(events, paths, delay=max(self.retry, self.max_delay))
            except Exception as e:  # never let the watcher thread die silently
                log.exception("watch: unexpected failure")
                if self.on_error:
                    self.on_error(e)
                self._redo(events, paths, delay=max(self.retry, self.max_delay))
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def _redo(self, events: int, paths: list[str], delay: float) -> None:
        """Put a batch back, due `delay` seconds from now (or `quiet` after a newer event, if that comes first)."""
        with self._cond:
            now = time.monotonic()
            self._events += events
            self._paths.update(paths)
            self._dirty = True
            self._first = now + delay - self.max_delay
            self._last = max(self._last, now + delay - self.quiet)

    def _apply(self, events: int, paths: list[str]) -> None:
        t0 = time.perf_counter()
        if self._library is None:
            kw = {} if self.exact_below is None else {"exact_below": self.exact_below}
            with Library(self.path, writable=True, **kw) as lib:
                report = self._index(lib)
        elif self.mutex is not None:
            with self.mutex:
                report = self._index(self._library)
        else:
            report = self._index(self._library)
        self.batches += 1
        batch = Batch(events, paths, report.as_dict(), time.perf_counter() - t0, time.time())
        log.info("watch: applied %d events in %.2fs: %s", events, batch.seconds, batch.report)
        self._sync_roots()
        if self.on_batch:
            self.on_batch(batch)

    def _index(self, lib: Library):
        missing = [r for r in lib.roots() if not r.exists()]
        if missing:  # an unmounted drive looks like a deleted folder: never let it empty the catalog
            raise LibraryError(
                f"{', '.join(map(str, missing))} is not available (unmounted?); the library is left as it is until "
                "it is back, or remove the folder from the library"
            )
        if self._encoder is None:  # loaded once: a CLIP tower takes about a second to open
            self._encoder = lib.load_encoder(self.encoder_spec, self.threads)
        return lib.index(encoder=self._encoder, threads=self.threads, progress=self.progress, cancel=self._stop.is_set)

    def _sync_roots(self) -> None:
        """Watch exactly the library's roots (roots added by `edgeret index` meanwhile are picked up)."""
        observer = self._observer
        if observer is None:  # not started
            return
        roots = self._roots if self._roots is not None else self._library_roots()
        handler: Any = _Handler(self._on_event)  # duck-typed: watchdog calls only its dispatch()
        for root in roots:
            if root not in self._watched and root.is_dir():
                self._watched[root] = observer.schedule(handler, str(root), recursive=True)
        for root in [r for r in self._watched if r not in roots]:
            observer.unschedule(self._watched.pop(root))

    def _library_roots(self) -> list[Path]:
        if self._library is not None:
            return self._library.roots()
        try:
            with Library(self.path) as lib:
                return lib.roots()
        except EdgeretError as e:
            log.warning("watch: cannot read the library's folders: %s", e)
            return list(self._watched)


class _Handler:
    """The watchdog event-handler interface, forwarding every event to one callable."""

    def __init__(self, callback: Callable[[object], None]):
        self.dispatch = callback
