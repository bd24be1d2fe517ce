"""Nearest-neighbour search over the catalog's unit vectors: exact numpy below a size, USearch HNSW above.

The HNSW file is derived data: named after the catalog's vectors_version, written to a temporary file, fsynced and
renamed into place, never overwritten, and rebuilt from the catalog whenever it is missing or stale.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import encoders  # noqa: F401  onnxruntime must load before usearch's numkong, or the process segfaults
from .settings import EXACT_BELOW  # below it an exact matrix product is faster to open, and exact (bench_search)

log = logging.getLogger(__name__)

USEARCH_DTYPE = "f16"
# Twice USearch's default: recall@10 0.98 → 0.99+ on clustered 512-d vectors for a fraction of a millisecond more.
EXPANSION_SEARCH = 128


@dataclass(frozen=True)
class Neighbours:
    keys: np.ndarray  # int64, best first
    scores: np.ndarray  # float32 cosine similarity


class ExactIndex:
    """Brute-force cosine search: one BLAS matrix product per query batch."""

    kind = "exact"

    def __init__(self, keys: np.ndarray, matrix: np.ndarray):
        self.keys = keys
        self.matrix = np.ascontiguousarray(matrix, np.float32)

    def __len__(self) -> int:
        return len(self.keys)

    def search(self, queries: np.ndarray, k: int) -> list[Neighbours]:
        if len(self.keys) == 0:
            return [Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in queries]
        sims = np.atleast_2d(queries).astype(np.float32) @ self.matrix.T
        k = min(k, len(self.keys))
        out = []
        for row in sims:
            top = np.argpartition(-row, k - 1)[:k]
            # stable ordering by (score desc, key asc) keeps results deterministic on ties
            top = top[np.lexsort((self.keys[top], -row[top]))]
            out.append(Neighbours(self.keys[top], row[top]))
        return out


class HnswIndex:
    """USearch HNSW over cosine distance with an explicit storage dtype."""

    kind = "hnsw"

    def __init__(self, index):
        self.index = index
        index.expansion_search = EXPANSION_SEARCH  # not kept in the saved file: set on every open

    @classmethod
    def build(cls, keys: np.ndarray, matrix: np.ndarray, dtype: str = USEARCH_DTYPE, threads: int = 0):
        from usearch.index import Index

        index = Index(ndim=matrix.shape[1], metric="cos", dtype=dtype)
        if len(keys):
            index.add(keys.astype(np.uint64), matrix.astype(np.float32), threads=threads)
        return cls(index)

    @classmethod
    def load(cls, path: Path):
        from usearch.index import Index

        return cls(Index.restore(str(path)))

    def __len__(self) -> int:
        return len(self.index)

    def save_atomic(self, path: Path) -> None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        self.index.save(str(tmp))  # usearch truncates in place and never fsyncs: never aim it at the real file
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def search(self, queries: np.ndarray, k: int) -> list[Neighbours]:
        queries = np.atleast_2d(queries).astype(np.float32)
        if len(self.index) == 0:
            return [Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in queries]
        m = self.index.search(queries, min(k, len(self.index)))
        keys, dists = np.atleast_2d(m.keys), np.atleast_2d(m.distances)
        counts = np.atleast_1d(getattr(m, "counts", keys.shape[1]))  # one query gives Matches, without counts
        # rows are padded when fewer than k were found: trust only `counts`
        return [
            Neighbours(keys[i, :c].astype(np.int64), (1.0 - dists[i, :c]).astype(np.float32))
            for i, c in enumerate(counts)
        ]


def open_index(library_dir: Path, catalog, exact_below: int = EXACT_BELOW, persist: bool = True):
    """The index over the catalog's current vectors: exact when small, else HNSW kept in step incrementally."""
    if catalog.vector_count() < exact_below:
        return ExactIndex(*catalog.vectors())
    version = catalog.vectors_version()
    path = library_dir / f"vectors-{version}.usearch"
    index, base = _latest_hnsw(library_dir, version)
    if index is None:
        index = HnswIndex.build(*catalog.vectors())
    elif base != version:
        _catch_up(index, catalog, base)
    if persist and base != version:
        try:
            index.save_atomic(path)
            _remove_stale(library_dir, keep=path)
        except OSError as e:  # a read-only library can still search from memory
            log.warning("could not save %s: %s", path.name, e)
    return index


def _latest_hnsw(library_dir: Path, version: int) -> tuple[HnswIndex | None, int]:
    """The newest saved HNSW file not newer than `version`, with its version."""
    found = []
    for f in library_dir.glob("vectors-*.usearch"):
        try:
            found.append((int(f.stem.split("-", 1)[1]), f))
        except ValueError:
            continue
    for v, f in sorted(found, reverse=True):
        if v > version:
            continue
        try:
            return HnswIndex.load(f), v
        except Exception as e:  # a damaged derived file is rebuilt, never trusted
            log.warning("ignoring %s: %s", f.name, e)
    return None, -1


def _catch_up(index: HnswIndex, catalog, base: int) -> None:
    """Apply to `index` (saved at catalog version `base`) what changed since: removals and new vectors."""
    current = set(catalog.ids().tolist())
    stale = [int(k) for k in index.index.keys if int(k) not in current]
    changed_ids, changed = catalog.vectors(since_version=base)
    present = [int(k) for k in changed_ids if int(k) in index.index]
    for key in stale + present:
        index.index.remove(key)
    if len(changed_ids):
        index.index.add(changed_ids.astype(np.uint64), changed)


def _remove_stale(library_dir: Path, keep: Path) -> None:
    for old in library_dir.glob("vectors-*.usearch*"):
        if old != keep:
            old.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse directory fsync; the rename is still atomic
        _fsync(path)
