"""The visual-token store: each library image's mmproj output, kept so re-ranking runs only the language model.

This is what the paper calls indexing the MLLM. One SQLite file per store; one row per image key holding every
image chunk's token embeddings in order, plus the image size that fixes the tile layout. The store records the
re-ranker's model_id and refuses to serve another model. Codecs:

- "f32":  exact (tests, exactness checks)
- "f16":  default; half the size, differences far below the model's own noise
- "int8": per-token absmax scaling, a quarter of f32 plus one f32 scale per token
- "pool2": 2x2 average pooling of each chunk's token grid, stored as f16 (the paper's compression); also cuts the
  language model's work per candidate about 4x, but changes the scores more than the other codecs

Writes are atomic per image (one transaction), so an interrupted indexing run leaves whole rows only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from edgeret.errors import EncoderMismatch, LibraryError
from edgeret.rerank.mtmd import VisualTokens

CODECS = ("f32", "f16", "int8", "pool2")
SCHEMA_VERSION = 1


def pool2x2(vt: VisualTokens) -> VisualTokens:
    """Average each chunk's token grid over 2x2 cells (odd edges average what they have)."""
    if len(vt.grids) != len(vt.chunks):
        raise ValueError("pooling needs each chunk's token grid")
    chunks, grids = [], []
    for arr, (rows, cols) in zip(vt.chunks, vt.grids, strict=True):
        if rows * cols != len(arr):
            raise ValueError(f"grid {rows}x{cols} does not match {len(arr)} tokens")
        g = arr.astype(np.float32).reshape(rows, cols, -1)
        r2, c2 = -(-rows // 2), -(-cols // 2)
        padded = np.zeros((r2 * 2, c2 * 2, g.shape[2]), np.float32)
        counts = np.zeros((r2 * 2, c2 * 2, 1), np.float32)
        padded[:rows, :cols], counts[:rows, :cols] = g, 1.0
        summed = padded.reshape(r2, 2, c2, 2, -1).sum(axis=(1, 3))
        n = counts.reshape(r2, 2, c2, 2, 1).sum(axis=(1, 3))
        chunks.append((summed / n).reshape(r2 * c2, -1))
        grids.append((r2, c2))
    return VisualTokens(chunks=chunks, size=vt.size, grids=grids, pool=vt.pool * 2)


def _encode_chunk(arr: np.ndarray, codec: str) -> bytes:
    if codec == "f32":
        return arr.astype("<f4").tobytes()
    if codec in ("f16", "pool2"):
        return arr.astype("<f2").tobytes()
    scale = np.abs(arr).max(axis=1, keepdims=True).astype(np.float32) / 127.0
    q = np.round(arr / np.where(scale == 0, 1.0, scale)).clip(-127, 127).astype(np.int8)
    return scale.astype("<f4").tobytes() + q.tobytes()


def _decode_chunk(blob: memoryview, n: int, d: int, codec: str) -> np.ndarray:
    if codec == "f32":
        return np.frombuffer(blob, "<f4", n * d).reshape(n, d).astype(np.float32)
    if codec in ("f16", "pool2"):
        return np.frombuffer(blob, "<f2", n * d).reshape(n, d).astype(np.float32)
    scale = np.frombuffer(blob, "<f4", n).reshape(n, 1)
    q = np.frombuffer(blob, np.int8, n * d, offset=4 * n).reshape(n, d)
    return q.astype(np.float32) * scale


def _chunk_nbytes(n: int, d: int, codec: str) -> int:
    return {"f32": 4 * n * d, "f16": 2 * n * d, "pool2": 2 * n * d, "int8": 4 * n + n * d}[codec]


PACKED_FIELDS = ("codec", "width", "height", "pool", "layout", "data")


def pack(tokens: VisualTokens, codec: str) -> dict:
    """One image's tokens as a storable record (PACKED_FIELDS): the SQLite store and the cluster's Parquet files."""
    if codec == "pool2" and tokens.pool == 1:
        tokens = pool2x2(tokens)
    layout = {"shapes": [list(c.shape) for c in tokens.chunks], "grids": [list(g) for g in tokens.grids]}
    blob = b"".join(_encode_chunk(np.asarray(c, np.float32), codec) for c in tokens.chunks)
    return {"codec": codec, "width": int(tokens.size[0]), "height": int(tokens.size[1]), "pool": int(tokens.pool),
            "layout": json.dumps(layout), "data": blob}


def unpack(record: dict) -> VisualTokens:
    """The float32 VisualTokens of a record made by pack()."""
    codec, layout = record["codec"], json.loads(record["layout"])
    view, chunks, off = memoryview(record["data"]), [], 0
    for n, d in layout["shapes"]:
        size = _chunk_nbytes(n, d, codec)
        chunks.append(_decode_chunk(view[off:off + size], n, d, codec))
        off += size
    return VisualTokens(chunks=chunks, size=(record["width"], record["height"]),
                        grids=[tuple(g) for g in layout["grids"]], pool=record["pool"])


class TokenStore:
    """SQLite-backed map: int image key -> VisualTokens, bound to one re-ranker model_id.

    Safe to share between threads (one connection behind a lock); the file is created on first open.
    """

    def __init__(self, path: str | Path, model_id: str, *, codec: str = "f16"):
        if codec not in CODECS:
            raise ValueError(f"unknown visual-token codec {codec!r}; choose from {', '.join(CODECS)}")
        self.path, self.model_id, self.codec = Path(path), model_id, codec
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._init_schema()
        except sqlite3.DatabaseError as e:
            raise LibraryError(f"visual-token store {self.path} cannot be opened: {e}") from e

    def _init_schema(self) -> None:
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS tokens (key INTEGER PRIMARY KEY, codec TEXT NOT NULL, "
                    "width INTEGER NOT NULL, height INTEGER NOT NULL, pool INTEGER NOT NULL, "
                    "layout TEXT NOT NULL, data BLOB NOT NULL)")
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    db.executemany("INSERT INTO meta VALUES (?, ?)",
                                   [("model_id", self.model_id), ("schema", str(SCHEMA_VERSION))])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if meta and meta.get("model_id") != self.model_id:
            self._db.close()
            raise EncoderMismatch(
                f"visual-token store {self.path} was built for re-ranker {meta.get('model_id')}, not "
                f"{self.model_id}; clear it (or re-encode) to use this re-ranker")
        if meta and meta.get("schema") != str(SCHEMA_VERSION):
            self._db.close()
            raise LibraryError(f"visual-token store {self.path} has schema {meta.get('schema')}, "
                               f"this edgeret reads {SCHEMA_VERSION}")

    def put(self, key: int, tokens: VisualTokens) -> None:
        """Store (or replace) one image's tokens in the store's codec; one transaction, so all or nothing."""
        r = pack(tokens, self.codec)
        row = (int(key), r["codec"], r["width"], r["height"], r["pool"], r["layout"], r["data"])
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def get(self, key: int) -> VisualTokens | None:
        """The stored tokens for `key`, as float32 arrays, or None."""
        with self._lock:
            row = self._db.execute("SELECT codec, width, height, pool, layout, data FROM tokens WHERE key = ?",
                                   (int(key),)).fetchone()
        return None if row is None else unpack(dict(zip(PACKED_FIELDS, row, strict=True)))

    def delete(self, key: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tokens WHERE key = ?", (int(key),))

    def keys(self) -> set[int]:
        with self._lock:
            return {k for (k,) in self._db.execute("SELECT key FROM tokens")}

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM tokens WHERE key = ?", (int(key),)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]

    def nbytes(self) -> int:
        """Total payload bytes (embeddings only), to report what a codec saves."""
        with self._lock:
            return self._db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM tokens").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
