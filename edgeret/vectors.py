"""Nearest-neighbour search over the catalog's unit vectors: exact numpy below a size, USearch HNSW above.

The HNSW file is derived data: named after the catalog's vectors_version, written to a temporary file, fsynced and
renamed into place, never overwritten, and rebuilt from the catalog whenever it is missing or stale.

Both indexes hold a photo's own vector and its region vectors (edgeret/regions.py) under distinct keys;
`search_photos` answers per photo: a photo scores the best cosine over (query vector, photo vector) pairs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import encoders  # noqa: F401  onnxruntime must load before usearch's numkong, or the process segfaults
from .regions import photo_of
from .settings import EXACT_BELOW  # below it an exact matrix product is faster to open, and exact (bench_search)

log = logging.getLogger(__name__)

USEARCH_DTYPE = "f16"
# Twice USearch's default: recall@10 0.98 → 0.99+ on clustered 512-d vectors for a fraction of a millisecond more.
EXPANSION_SEARCH = 128
SELF_CHECK_K = 16  # a key must come back among the top 16 of its own vector to count as reachable
TIE = 1e-6  # cosine distance under which two stored vectors are the same (copies of one photo)


@dataclass(frozen=True)
class Neighbours:
    keys: np.ndarray  # int64, best first
    scores: np.ndarray  # float32 cosine similarity


def _top_photos(photos: np.ndarray, scores: np.ndarray, k: int) -> Neighbours:
    """The k best photos, by (score desc, key asc) so that ties come out the same every time."""
    k = min(k, len(photos))
    if k == 0:
        return Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(photos) else np.arange(len(photos))
    top = top[np.lexsort((photos[top], -scores[top]))]
    return Neighbours(photos[top].astype(np.int64), scores[top].astype(np.float32))


def _best_per_photo(keys: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(photos, best score of each) from vector-level hits."""
    photos = photo_of(keys)
    order = np.lexsort((-scores, photos))
    photos, scores = photos[order], scores[order]
    first = np.r_[True, photos[1:] != photos[:-1]] if len(photos) else np.zeros(0, bool)
    return photos[first], scores[first]


class ExactIndex:
    """Brute-force cosine search: one BLAS matrix product per query batch."""

    kind = "exact"

    def __init__(self, keys: np.ndarray, matrix: np.ndarray):
        keys = np.asarray(keys, np.int64)
        order = np.argsort(photo_of(keys), kind="stable")  # each photo's vectors side by side, for reduceat
        self.keys = keys[order]
        self.matrix = np.ascontiguousarray(np.asarray(matrix, np.float32)[order] if len(keys) else matrix, np.float32)
        owners = photo_of(self.keys)
        self._starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if len(keys) else np.zeros(0, int)
        self.photos = owners[self._starts]

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

    def search_photos(self, query_sets: list[np.ndarray], k: int) -> list[Neighbours]:
        """Per set of query vectors, the top-k photos by their best (query vector, photo vector) cosine."""
        out = []
        for q in query_sets:
            if len(self.keys) == 0:
                out.append(_top_photos(self.photos, np.zeros(0, np.float32), k))
                continue
            sims = (np.atleast_2d(q).astype(np.float32) @ self.matrix.T).max(axis=0)
            out.append(_top_photos(self.photos, np.maximum.reduceat(sims, self._starts), k))
        return out


class HnswIndex:
    """USearch HNSW over cosine distance with an explicit storage dtype; every key stays findable.

    USearch's concurrent add() can leave a node no search reaches (upstream issue #735, docs/usearch-unreachable.md),
    and HNSW's pruning rarely does so even on one thread. After a build or a catch-up the keys that may be affected
    are searched with their own vectors; those not found are re-added, and any still not found are `orphans`,
    searched exactly beside the graph (and saved next to it), so no photo is ever lost to search.
    """

    kind = "hnsw"

    def __init__(self, index, orphans: np.ndarray | None = None, per_photo: float = 1.0):
        self.index = index
        self.per_photo = per_photo  # vectors per photo: how far to over-fetch for k distinct photos
        index.expansion_search = EXPANSION_SEARCH  # not kept in the saved file: set on every open
        self.set_orphans(np.zeros(0, np.int64) if orphans is None else orphans)

    @classmethod
    def build(cls, keys: np.ndarray, matrix: np.ndarray, dtype: str = USEARCH_DTYPE, threads: int = 0):
        from usearch.index import Index

        index = cls(Index(ndim=matrix.shape[1], metric="cos", dtype=dtype))
        if len(keys):
            index.index.add(keys.astype(np.uint64), matrix.astype(np.float32), threads=threads)
            index.repair(keys)
        return index

    @classmethod
    def load(cls, path: Path):
        from usearch.index import Index

        index = Index.restore(str(path))
        if index is None:
            raise ValueError(f"{path.name} is not a USearch index")
        sidecar = _orphans_file(path)
        if not sidecar.is_file():  # saved before reachability was checked: check every key once
            found = cls(index)
            found.repair(np.asarray(index.keys, np.int64))
            with contextlib.suppress(OSError):  # a read-only library checks again next time
                _write_atomic(sidecar, lambda tmp: tmp.write_text(json.dumps(found.orphans.tolist()), "utf-8"))
            return found
        return cls(index, np.asarray(json.loads(sidecar.read_text("utf-8")), np.int64))

    def __len__(self) -> int:
        return len(self.index)

    def _present(self, keys: np.ndarray) -> np.ndarray:
        """The keys among `keys` that the graph holds."""
        return np.asarray([k for k in np.asarray(keys, np.int64).tolist() if k in self.index], np.int64)

    def set_orphans(self, keys: np.ndarray) -> None:
        keys = self._present(keys)
        self.orphans = keys
        mat = self._stored(keys)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        self._orphan_matrix = mat / np.maximum(norms, 1e-12)

    def _stored(self, keys: np.ndarray) -> np.ndarray:
        if not len(keys):
            return np.zeros((0, self.index.ndim), np.float32)
        return np.asarray(self.index.get(np.asarray(keys, np.uint64)), np.float32).reshape(len(keys), -1)

    def unreachable(self, keys: np.ndarray) -> np.ndarray:
        """The keys among `keys` that a search with their own stored vector does not return."""
        keys = self._present(keys)
        lost = []
        for start in range(0, len(keys), 4096):
            chunk = keys[start:start + 4096]
            vecs = self._stored(chunk)
            k = min(len(self.index), SELF_CHECK_K)
            m = self.index.search(vecs, k)
            got, dist = np.atleast_2d(m.keys), np.atleast_2d(m.distances)
            counts = np.atleast_1d(np.asarray(getattr(m, "counts", got.shape[1])))  # one query: Matches, no counts
            for i, key in enumerate(chunk.tolist()):
                c = int(counts[i])
                if key in got[i, :c].tolist():
                    continue
                if c == k and dist[i, c - 1] <= TIE:  # k exact copies of its vector: it cannot be told apart
                    continue
                lost.append(key)
        return np.asarray(lost, np.int64)

    def repair(self, keys: np.ndarray) -> None:
        """Make every key of `keys` findable: re-add the unreachable ones once, keep the rest as orphans."""
        lost = self.unreachable(np.union1d(keys, self.orphans))
        if len(lost):
            vecs = self._stored(lost)
            self.index.remove(lost.astype(np.uint64))
            self.index.add(lost.astype(np.uint64), vecs, threads=1)
            lost = self.unreachable(lost)
            log.info("HNSW: %d keys unreachable after re-adding; searched exactly", len(lost))
        self.set_orphans(lost)

    def save_atomic(self, path: Path) -> None:
        # the orphan list first: a reader that finds the index always finds its list
        _write_atomic(_orphans_file(path), lambda tmp: tmp.write_text(json.dumps(self.orphans.tolist()), "utf-8"))
        _write_atomic(path, lambda tmp: self.index.save(str(tmp)))  # usearch truncates in place, never fsyncs
        _fsync_dir(path.parent)

    def search(self, queries: np.ndarray, k: int) -> list[Neighbours]:
        queries = np.atleast_2d(queries).astype(np.float32)
        if len(self.index) == 0:
            return [Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in queries]
        m = self.index.search(queries, min(k, len(self.index)))
        keys, dists = np.atleast_2d(m.keys), np.atleast_2d(m.distances)
        counts = np.atleast_1d(np.asarray(getattr(m, "counts", keys.shape[1])))  # one query: Matches, no counts
        # rows are padded when fewer than k were found: trust only `counts`
        found = [
            Neighbours(keys[i, :c].astype(np.int64), (1.0 - dists[i, :c]).astype(np.float32))
            for i, c in enumerate(counts)
        ]
        if not len(self.orphans):
            return found
        return [self._with_orphans(n, q, k) for n, q in zip(found, queries, strict=True)]

    def _with_orphans(self, n: Neighbours, query: np.ndarray, k: int) -> Neighbours:
        qn = query / max(float(np.linalg.norm(query)), 1e-12)
        keys = np.concatenate([n.keys, self.orphans])
        scores = np.concatenate([n.scores, (self._orphan_matrix @ qn).astype(np.float32)])
        keys, first = np.unique(keys, return_index=True)
        scores = scores[first]
        order = np.lexsort((keys, -scores))[:k]
        return Neighbours(keys[order], scores[order])

    def search_photos(self, query_sets: list[np.ndarray], k: int) -> list[Neighbours]:
        """Per set of query vectors, the top-k photos: vectors are over-fetched until k distinct photos are found."""
        n = len(self.index)
        out = []
        for q in query_sets:
            fetch = min(n, max(k, int(np.ceil(2 * k * self.per_photo))))
            while True:
                found = self.search(q, fetch)
                photos, scores = _best_per_photo(np.concatenate([f.keys for f in found]),
                                                 np.concatenate([f.scores for f in found]))
                if len(photos) >= k or fetch >= n:
                    break
                fetch = min(n, fetch * 4)
            out.append(_top_photos(photos, scores, k))
        return out


def open_index(library_dir: Path, catalog, exact_below: int = EXACT_BELOW, persist: bool = True):
    """The index over the catalog's current vectors: exact when small, else HNSW kept in step incrementally.

    `exact_below` counts every vector, region vectors included: they are what an exact search multiplies.
    """
    photos = catalog.vector_count()
    total = photos + catalog.region_count()
    if total < exact_below:
        return ExactIndex(*catalog.index_vectors())
    version = catalog.vectors_version()
    path = library_dir / f"vectors-{version}.usearch"
    index, base = _latest_hnsw(library_dir, version)
    if index is None:
        index = HnswIndex.build(*catalog.index_vectors())
    elif base != version:
        _catch_up(index, catalog, base)
    index.per_photo = total / max(1, photos)
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
    """Apply to `index` (saved at catalog version `base`) what changed since: removals and new vectors (region
    vectors included).

    Then check what the change can have cut off: the new keys and the stored keys nearest to every vector added or
    removed (their neighbour lists are the ones rewritten).
    """
    current = set(catalog.index_keys().tolist())
    stale = [int(k) for k in index.index.keys if int(k) not in current]
    changed_ids, changed = catalog.index_vectors(since_version=base)
    present = [int(k) for k in changed_ids if int(k) in index.index]
    touched = [changed] if len(changed_ids) else []
    if stale or present:
        gone = np.asarray(stale + present, np.uint64)
        touched.append(index._stored(gone))
        index.index.remove(gone)
    if len(changed_ids):
        index.index.add(changed_ids.astype(np.uint64), changed, threads=1)  # one thread: no concurrent-add race
    if touched:  # else nothing in the graph changed (e.g. only a failed photo moved the version on)
        index.repair(np.union1d(changed_ids, _near(catalog, np.concatenate(touched))))


def _near(catalog, vectors: np.ndarray, per_vector: int = 4 * SELF_CHECK_K) -> np.ndarray:
    """The index keys (photos' and regions') nearest (exactly) to any of `vectors`."""
    ids, matrix = catalog.index_vectors()
    if not len(ids):
        return ids
    sims = vectors.astype(np.float32) @ matrix.T  # stored vectors: finite (the indexer keeps NaN out)
    n = min(per_vector, len(ids))
    return np.unique(ids[np.argpartition(-sims, n - 1, axis=1)[:, :n]])


def _orphans_file(path: Path) -> Path:
    return path.with_name(path.name + ".orphans.json")


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write(tmp)
    _fsync(tmp)
    os.replace(tmp, path)


def _remove_stale(library_dir: Path, keep: Path) -> None:
    for old in library_dir.glob("vectors-*.usearch*"):
        if old not in (keep, _orphans_file(keep)):
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
