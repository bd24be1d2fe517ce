"""The SQLite catalog: one row per photo (path, size, mtime, content hash, status, failure reason, vector).

It is the library's source of truth; the search index is rebuilt from its vectors whenever they disagree.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from .errors import LibraryError
from .fsnames import from_sql, prefix_bytes, to_sql
from .picture import THUMB_BYTES, Picture
from .regions import region_keys

VECTOR_DTYPE = np.float16  # half the space of float32; cosine rankings are unchanged at photo-library scale

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots (path TEXT PRIMARY KEY, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'pending')),
    reason TEXT,
    width INTEGER,
    height INTEGER,
    vector BLOB,
    vec_version INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_hash ON images(hash);
"""
_REGIONS = "CREATE TABLE IF NOT EXISTS regions (image_id INTEGER PRIMARY KEY, vectors BLOB NOT NULL)"
# regions: one row per photo with region vectors, their f16 rows stacked in one BLOB (edgeret/regions.py); a row
# counts only while its photo is 'ok' with a vector, so a photo that fails or goes pending needs no cascade to hide it.
_ORPHANS = "DELETE FROM regions WHERE image_id NOT IN (SELECT id FROM images WHERE vector IS NOT NULL)"


def _add_pictures(db: sqlite3.Connection) -> None:
    add_column(db, "images", "phash", "INTEGER")  # edgeret.picture: 64-bit pHash, signed
    add_column(db, "images", "thumb", "BLOB")  # edgeret.picture: 32×32 grey + mean colour


def add_column(db: sqlite3.Connection, table: str, column: str, decl: str) -> None:
    """ALTER TABLE … ADD COLUMN, skipped when the column exists (SQLite has no ADD COLUMN IF NOT EXISTS)."""
    if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def run_script(db: sqlite3.Connection, sql: str) -> None:
    """Each `;`-separated statement of `sql` inside the caller's transaction (so: no triggers with inner `;`)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


# The catalog's schema history. MIGRATIONS[i] brings a catalog from schema version i to i + 1, inside one
# transaction that also records the new version. Every step must be idempotent (IF NOT EXISTS, add_column), so a
# catalog created by any release, or a step that two processes race to apply, ends the same. Append new steps at
# the end; never change one that has shipped.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    lambda db: run_script(db, _SCHEMA),  # 1: photos, roots, meta: the first release
    lambda db: run_script(db, _REGIONS),  # 2: region vectors (issue 11)
    lambda db: _add_pictures(db),  # 3: perceptual hash + thumbnail (issue 15); filled by the next index run
]
SCHEMA_VERSION = len(MIGRATIONS)

# Paths that are not valid UTF-8 are BLOBs (fsnames.to_sql); as bytes, every path sorts the way TEXT alone would.
_BY_PATH = " ORDER BY CAST(path AS BLOB)"


@dataclass(frozen=True)
class Row:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    reason: str | None


def _readonly_uri(path: Path) -> str:
    """A URI that never writes: mode=ro, and immutable=1 where the folder is read-only (a CD, a read-only mount).

    In WAL mode even a reader needs to create the -shm file; on read-only media nothing can change the file, so
    SQLite may skip locking and the WAL index altogether.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return uri + "&immutable=1" if not os.access(path.parent, os.W_OK) else uri


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Apply MIGRATIONS[version:], each step in its own transaction that also records the version it reached."""
    for step in range(version, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")  # one writer at a time; a process that raced us re-applies idempotently
        try:
            MIGRATIONS[step](db)
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(step + 1),))
            db.commit()
        except BaseException:
            db.rollback()
            raise


def content_hash(path: Path, size: int) -> str:
    """Hash of the size, the first MiB and the last KiB: cheap, and enough to recognise a moved photo."""
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > (1 << 20):
            f.seek(size - 1024)
            h.update(f.read(1024))
    return h.hexdigest()


class Catalog:
    """Thin typed access to catalog.sqlite; every write method commits its own transaction."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            self.db = sqlite3.connect(_readonly_uri(self.path), uri=True, check_same_thread=False)
        else:
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # with WAL: survives a killed process, each commit atomic
        self.db.execute("PRAGMA busy_timeout=5000")
        self._check_schema(readonly)

    def close(self) -> None:
        self.db.close()

    # schema ---------------------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The version this catalog's schema is at (0: empty, or older than versioning)."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return 0
        return int(self.get_meta("schema_version") or 0)

    def _check_schema(self, readonly: bool) -> None:
        """Refuse a catalog from a newer edgeret; bring an older one up to date, or refuse it where it cannot be."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            self.db.close()
            raise LibraryError(
                f"the library {self.path.parent} was written by a newer edgeret (catalog schema {version}; this "
                f"edgeret reads up to {SCHEMA_VERSION}): upgrade edgeret to open it"
            )
        if version == SCHEMA_VERSION:
            return
        if not readonly:
            _migrate(self.db, version)
            return
        # a reader upgrades through its own short write, where the library can be written; then reads as before
        self.db.close()
        try:
            if not _writable(self.path):
                raise sqlite3.OperationalError("read-only")
            with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as db:
                _migrate(db, version)
        except sqlite3.OperationalError:
            raise LibraryError(
                f"the library {self.path.parent} needs upgrading (catalog schema {version} → {SCHEMA_VERSION}) and "
                "cannot be written here: open it once with write access, e.g. with `edgeret index`"
            ) from None
        self.db = sqlite3.connect(_readonly_uri(self.path), uri=True, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout=5000")

    # meta -----------------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def vectors_version(self) -> int:
        return int(self.get_meta("vectors_version") or 0)

    # roots ----------------------------------------------------------------------------------------------------
    def roots(self) -> list[Path]:
        return [Path(from_sql(r[0])) for r in self.db.execute("SELECT path FROM roots" + _BY_PATH)]

    def add_roots(self, roots: Iterable[Path]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO roots(path, added) VALUES (?, ?)", [(to_sql(str(r)), time.time()) for r in roots]
            )

    def remove_root(self, root: Path) -> int:
        """Forget a root and every photo under it; returns how many photos were forgotten."""
        prefix = prefix_bytes(str(root))
        with self.db:
            self.db.execute("DELETE FROM roots WHERE path=?", (to_sql(str(root)),))
            cur = self.db.execute(
                "DELETE FROM images WHERE substr(CAST(path AS BLOB), 1, ?) = ?", (len(prefix), prefix)
            )
            if cur.rowcount:
                self.db.execute(_ORPHANS)
                self._bump_version()
        return cur.rowcount

    # images ---------------------------------------------------------------------------------------------------
    def rows(self) -> dict[str, Row]:
        cur = self.db.execute("SELECT id, path, size, mtime_ns, hash, status, reason FROM images")
        return {from_sql(r[1]): Row(r[0], from_sql(r[1]), *r[2:]) for r in cur}

    def write_batch(self, ok: list[tuple], failed: list[tuple], moved: Sequence[tuple] = ()) -> None:
        """Apply one batch of indexing results in a single transaction.

        ok: (path, size, mtime_ns, hash, width, height, vector[, regions[, picture]]) where regions is an (R, d) matrix
        of region vectors or None, and picture an edgeret.picture.Picture or None (computed later); failed: (path,
        size, mtime_ns, reason); moved: (old_path, new_path, size, mtime_ns) for files found again under a new name
        (they keep their row, so their regions too). Vectors are finite: the indexer records a photo whose vector is
        NaN/inf as failed instead.
        """
        now = time.time()
        version = self.vectors_version() + 1
        with self.db:
            self.db.executemany(
                "UPDATE images SET path=?, size=?, mtime_ns=? WHERE path=?",
                [(to_sql(new), size, mtime, to_sql(old)) for old, new, size, mtime in moved],
            )
            self.db.executemany(
                """INSERT INTO images(path, size, mtime_ns, hash, status, width, height, vector, vec_version,
                   indexed_at, phash, thumb) VALUES (?, ?, ?, ?, 'ok', ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,
                   hash=excluded.hash, status='ok', reason=NULL, width=excluded.width, height=excluded.height,
                   vector=excluded.vector, vec_version=excluded.vec_version, indexed_at=excluded.indexed_at,
                   phash=excluded.phash, thumb=excluded.thumb""",
                [(to_sql(p), s, m, h, w, ht, _blob(v), version, now, *_picture_cols((*rest, None, None)[1]))
                 for p, s, m, h, w, ht, v, *rest in ok],
            )
            self._write_regions(ok)
            self.db.executemany(
                """INSERT INTO images(path, size, mtime_ns, status, reason, indexed_at)
                   VALUES (?, ?, ?, 'failed', ?, ?)
                   ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, hash=NULL,
                   status='failed', reason=excluded.reason, vector=NULL, indexed_at=excluded.indexed_at,
                   phash=NULL, thumb=NULL""",
                [(to_sql(p), s, m, r, now) for p, s, m, r in failed],
            )
            if failed:
                self.db.execute(_ORPHANS)
            if ok or moved or failed:  # a failed re-read may have replaced a row that had a vector
                self._bump_version()

    def _write_regions(self, ok: list[tuple]) -> None:
        self.db.executemany(
            "DELETE FROM regions WHERE image_id = (SELECT id FROM images WHERE path=?)", [(to_sql(r[0]),) for r in ok]
        )
        self.db.executemany(
            "INSERT INTO regions(image_id, vectors) SELECT id, ? FROM images WHERE path=?",
            [(_blob(r[7]), to_sql(r[0])) for r in ok if len(r) > 7 and r[7] is not None and len(r[7])],
        )

    def delete_paths(self, paths: Iterable[str]) -> int:
        paths = list(paths)
        with self.db:
            self.db.executemany("DELETE FROM images WHERE path=?", [(to_sql(p),) for p in paths])
            if paths:
                self.db.execute(_ORPHANS)
                self._bump_version()
        return len(paths)

    def mark_all_pending(self) -> None:
        """Drop every vector so the next run re-encodes each photo (a new encoder); row ids are kept."""
        with self.db:
            self.db.execute("UPDATE images SET status='pending', vector=NULL, reason=NULL")
            self.db.execute("DELETE FROM regions")
            self._bump_version()

    def _bump_version(self) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES ('vectors_version', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def vector_by_hash(self, digest: str) -> tuple[np.ndarray, int, int, np.ndarray | None, Picture | None] | None:
        """(vector, width, height, region vectors or None, picture or None) of an encoded photo with this content
        hash, if any (one with its picture computed first)."""
        row = self.db.execute(
            "SELECT i.vector, i.width, i.height, r.vectors, i.phash, i.thumb FROM images i "
            "LEFT JOIN regions r ON r.image_id = i.id "
            "WHERE i.hash=? AND i.status='ok' AND i.vector IS NOT NULL ORDER BY i.phash IS NULL LIMIT 1",
            (digest,),
        ).fetchone()
        if not row:
            return None
        vector = _unblob(row[0])
        crops = None if row[3] is None else _unblob(row[3]).reshape(-1, len(vector))
        return vector, row[1], row[2], crops, _picture(row[4], row[5])

    # pictures (edgeret.picture) ----------------------------------------------------------------------------------
    def without_picture(self) -> list[tuple[int, str, int]]:
        """(id, path, size) of the encoded photos whose picture signature is still to be computed."""
        cur = self.db.execute(
            "SELECT id, path, size FROM images WHERE status='ok' AND vector IS NOT NULL AND phash IS NULL" + _BY_PATH
        )
        return [(i, from_sql(p), s) for i, p, s in cur]

    def write_pictures(self, pictures: Sequence[tuple[int, Picture]]) -> None:
        """Store computed signatures by photo id (vectors are untouched, so the search index stays as it is)."""
        with self.db:
            self.db.executemany("UPDATE images SET phash=?, thumb=? WHERE id=?",
                                [(*_picture_cols(p), i) for i, p in pictures])

    def picture_count(self) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM images WHERE status='ok' AND vector IS NOT NULL AND phash IS NOT NULL"
        ).fetchone()[0]

    def phashes(self) -> dict[int, int]:
        """id -> pHash of every encoded photo that has one."""
        cur = self.db.execute("SELECT id, phash FROM images WHERE status='ok' AND vector IS NOT NULL "
                              "AND phash IS NOT NULL")
        return dict(cur.fetchall())

    def pictures(self, ids: Iterable[int]) -> dict[int, Picture]:
        """id -> Picture of those of `ids` that have one."""
        out: dict[int, Picture] = {}
        for i, h, t in self._rows_with_ids("SELECT id, phash, thumb FROM images WHERE phash IS NOT NULL AND", ids):
            pic = _picture(h, t)
            if pic is not None:
                out[i] = pic
        return out

    def hashes(self) -> set[str]:
        cur = self.db.execute("SELECT hash FROM images WHERE status='ok' AND hash IS NOT NULL")
        return {r[0] for r in cur}

    def vector_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM images WHERE status='ok' AND vector IS NOT NULL").fetchone()[0]

    def region_count(self) -> int:
        """How many region vectors the encoded photos have (both sides are f16 rows of one width)."""
        row = self.db.execute(
            "SELECT SUM(LENGTH(r.vectors) / LENGTH(i.vector)) FROM regions r JOIN images i ON i.id = r.image_id "
            "WHERE i.status='ok' AND i.vector IS NOT NULL"
        ).fetchone()
        return int(row[0] or 0)

    def region_vectors(self, since_version: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(region keys, float32 matrix) of the region vectors of photos written after `since_version`."""
        cur = self.db.execute(
            "SELECT i.id, r.vectors FROM regions r JOIN images i ON i.id = r.image_id "
            "WHERE i.status='ok' AND i.vector IS NOT NULL AND i.vec_version > ? ORDER BY i.id",
            (since_version,),
        )
        keys, mats = [], []
        for photo, blob in cur:
            mats.append(np.frombuffer(blob, VECTOR_DTYPE))
            keys.append(photo)
        if not keys:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        dim = self._dim()
        mats = [m.reshape(-1, dim) for m in mats]
        key_arr = np.concatenate([region_keys(p, len(m)) for p, m in zip(keys, mats, strict=True)])
        return key_arr, np.concatenate(mats).astype(np.float32)

    def index_vectors(self, since_version: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Every vector the search index holds (photos' own, then their regions) written after `since_version`."""
        ids, mat = self.vectors(since_version)
        rkeys, rmat = self.region_vectors(since_version)
        if not len(rkeys):
            return ids, mat
        return np.concatenate([ids, rkeys]), np.concatenate([mat, rmat]) if len(ids) else rmat

    def index_keys(self) -> np.ndarray:
        """The keys of every vector the search index should hold right now."""
        cur = self.db.execute(
            "SELECT i.id, LENGTH(r.vectors) / LENGTH(i.vector) FROM regions r JOIN images i ON i.id = r.image_id "
            "WHERE i.status='ok' AND i.vector IS NOT NULL"
        )
        parts = [self.ids(), *(region_keys(p, n) for p, n in cur)]
        return np.concatenate(parts)

    def regions_of(self, key: int) -> np.ndarray | None:
        row = self.db.execute(
            "SELECT r.vectors, LENGTH(i.vector) FROM regions r JOIN images i ON i.id = r.image_id "
            "WHERE r.image_id=? AND i.vector IS NOT NULL",
            (key,),
        ).fetchone()
        return _unblob(row[0]).reshape(-1, row[1] // np.dtype(VECTOR_DTYPE).itemsize) if row else None

    def _dim(self) -> int:
        row = self.db.execute("SELECT LENGTH(vector) FROM images WHERE vector IS NOT NULL LIMIT 1").fetchone()
        return row[0] // np.dtype(VECTOR_DTYPE).itemsize if row else 0

    def ids(self) -> np.ndarray:
        cur = self.db.execute("SELECT id FROM images WHERE status='ok' AND vector IS NOT NULL ORDER BY id")
        return np.fromiter((r[0] for r in cur), np.int64)

    def vectors(self, since_version: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 matrix) of the encoded photos whose vector was written after `since_version`."""
        cur = self.db.execute(
            "SELECT id, vector FROM images WHERE status='ok' AND vector IS NOT NULL AND vec_version > ? ORDER BY id",
            (since_version,),
        )
        ids, blobs = [], []
        for i, b in cur:
            ids.append(i)
            blobs.append(b)
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        mat = np.frombuffer(b"".join(blobs), VECTOR_DTYPE).reshape(len(ids), -1).astype(np.float32)
        return np.asarray(ids, np.int64), mat

    def paths_for(self, ids: Iterable[int]) -> dict[int, str]:
        return {i: from_sql(p) for i, p in self._rows_with_ids("SELECT id, path FROM images WHERE", ids)}

    def _rows_with_ids(self, head: str, ids: Iterable[int]):
        """Rows of `head` + " id IN (...)" for `ids`, 500 at a time (SQLite's bound-parameter limit)."""
        ids = list(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            yield from self.db.execute(f"{head} id IN ({','.join('?' * len(chunk))})", chunk)

    def photos(self, prefix: str | None = None) -> list[tuple[int, str]]:
        """(id, path) of every encoded photo, optionally under a folder, sorted by path."""
        q, args = "SELECT id, path FROM images WHERE status='ok'", cast(tuple, ())
        if prefix:
            p = prefix_bytes(prefix)
            q, args = q + " AND substr(CAST(path AS BLOB), 1, ?) = ?", (len(p), p)
        return [(i, from_sql(path)) for i, path in self.db.execute(q + _BY_PATH, args)]

    def vector_of(self, key: int) -> np.ndarray | None:
        row = self.db.execute("SELECT vector FROM images WHERE id=? AND vector IS NOT NULL", (key,)).fetchone()
        return _unblob(row[0]) if row else None

    def details(self) -> dict[int, tuple]:
        """id -> (path, size, mtime_ns, width, height, hash) of every encoded photo."""
        cur = self.db.execute(
            "SELECT id, path, size, mtime_ns, width, height, hash FROM images WHERE status='ok' AND vector IS NOT NULL"
        )
        return {row[0]: (from_sql(row[1]), *row[2:]) for row in cur}

    def id_for_path(self, path: str) -> int | None:
        row = self.db.execute("SELECT id FROM images WHERE path=?", (to_sql(path),)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        cur = self.db.execute("SELECT status, COUNT(*) FROM images GROUP BY status")
        return dict(cur.fetchall())

    def failures(self) -> Iterator[tuple[str, str]]:
        for path, reason in self.db.execute("SELECT path, reason FROM images WHERE status='failed'" + _BY_PATH):
            yield from_sql(path), reason


def _picture_cols(p: Picture | None) -> tuple[int | None, bytes | None]:
    return (None, None) if p is None else (p.phash, p.thumb)


def _picture(phash: int | None, thumb: bytes | None) -> Picture | None:
    return None if phash is None or thumb is None or len(thumb) != THUMB_BYTES else Picture(phash, thumb)


def _blob(v: np.ndarray) -> bytes:
    return np.asarray(v, VECTOR_DTYPE).tobytes()


def _unblob(b: bytes) -> np.ndarray:
    return np.frombuffer(b, VECTOR_DTYPE).astype(np.float32)
