"""Job state kept in the library folder: each collection's sources and failures, and the one-writer lock.

The vectors live in Milvus; what is not a vector (a photo that could not be read, and why) lives here, in SQLite,
written batch by batch like the local catalog, so a killed job leaves whole records only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import LibraryBusy
from .collection import Known

STATE = "cluster.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (collection TEXT NOT NULL, source TEXT NOT NULL, PRIMARY KEY (collection, source));
CREATE TABLE IF NOT EXISTS meta (collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (collection, key));
CREATE TABLE IF NOT EXISTS failures (collection TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (collection, path));
"""


class JobState:
    """One collection's job state in `library`; `writable` takes the lock that lets one job write at a time."""

    def __init__(self, library: Path, collection: str, writable: bool = False):
        self.library, self.collection = Path(library), collection
        self.library.mkdir(parents=True, exist_ok=True)
        self._lock = None
        if writable:
            self._lock = FileLock(self.library / f"cluster-{collection}.lock")
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                raise LibraryBusy(f"another edgeret cluster job is writing the collection {collection!r} "
                                  f"from {self.library}") from None
        self.db = sqlite3.connect(self.library / STATE, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> JobState:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE collection = ? AND key = ?", (self.collection, key))
        return next((v for (v,) in row), None)

    def set(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", (self.collection, key, value))

    def add_sources(self, sources: Iterable[str]) -> list[str]:
        """Remember `sources` for this collection; returns every source it has."""
        self.db.executemany("INSERT OR IGNORE INTO sources VALUES (?, ?)", [(self.collection, s) for s in sources])
        return self.sources()

    def sources(self) -> list[str]:
        q = "SELECT source FROM sources WHERE collection = ? ORDER BY source"
        return [s for (s,) in self.db.execute(q, (self.collection,))]

    def failed(self) -> dict[str, Known]:
        """path -> Known(status 'failed') for the photos that failed, with the size and mtime they failed at."""
        q = "SELECT path, size, mtime_ns FROM failures WHERE collection = ?"
        return {p: Known(s, m, None, "failed") for p, s, m in self.db.execute(q, (self.collection,))}

    def failures(self) -> list[tuple[str, str]]:
        q = "SELECT path, reason FROM failures WHERE collection = ? ORDER BY path"
        return self.db.execute(q, (self.collection,)).fetchall()

    def write(self, failed: list[tuple[str, int, int, str]], cleared: Iterable[str]) -> None:
        """Record (path, size, mtime_ns, reason) failures and forget those of `cleared` paths, in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM failures WHERE collection = ? AND path = ?",
                                [(self.collection, p) for p in cleared])
            self.db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                                [(self.collection, *f) for f in failed])
