"""`edgeret cluster duplicates`: near-duplicate groups over a collection, grouped as the local command groups them.

Milvus computes each photo's k nearest neighbours (the collection's HNSW index, a page of photos per request), so the
driver holds the graph and the photos' metadata, and the vectors only of photos in some pair; grouping (identical
files, similar shots), the same-content rule and the choice of each group's original are edgeret.duplicates' own.
The collection holds no picture signatures, so there is no "same picture" kind here.
"""

from __future__ import annotations

import numpy as np

from ..duplicates import Group, _same_hash, assemble, candidate_pairs
from ..errors import UsageError
from ..indexer import Progress
from ..settings import DUPLICATE_K, DUPLICATE_THRESHOLD
from .collection import ITER_BATCH, META, PhotoCollection
from .index import ClusterOptions
from .runtime import milvus_client


def find_duplicates(opts: ClusterOptions, threshold: float = DUPLICATE_THRESHOLD, k: int = DUPLICATE_K,
                    progress: Progress | None = None) -> list[Group]:
    """Groups of near-duplicate photos in the collection, largest first (as edgeret.duplicates.find_duplicates)."""
    if not 0.0 < threshold <= 1.0:
        raise UsageError("the threshold is a cosine similarity in (0, 1]")
    coll = PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection)
    details, neighbours = _graph(coll, k, progress)
    if len(details) < 2:
        return []
    row_of = {d[0]: r for r, d in details.items()}
    nbr = np.full((len(details), k), -1, np.int64)
    sim = np.zeros((len(details), k), np.float32)
    for r, found in neighbours.items():
        found = [(row_of[p], s) for p, s in found if p in row_of and row_of[p] != r][:k]
        nbr[r, :len(found)] = [x for x, _ in found]
        sim[r, :len(found)] = [s for _, s in found]
    a, b, _ = candidate_pairs(nbr, sim, threshold)
    rows = sorted(set(a.tolist()) | set(b.tolist()) | {r for g in _same_hash(details, np.arange(len(details)))
                                                         for r in g})
    matrix = _vectors(coll, [details[r][0] for r in rows], len(details), rows)
    # no picture signatures in the collection: identical files and similar shots, grouped as the local command does
    return assemble(np.arange(len(details)), matrix, details, [], list(zip(a.tolist(), b.tolist(), strict=True)))


def _graph(coll: PhotoCollection, k: int, progress: Progress | None):
    """(row -> (path, size, mtime_ns, width, height, hash), row -> [(neighbour path, cosine)]) of every photo."""
    details: dict[int, tuple] = {}
    neighbours: dict[int, list[tuple[str, float]]] = {}
    total = coll.count()
    for page in coll.rows(META[:-1] + ["vector"], batch=ITER_BATCH):
        found = coll.search(np.asarray([r["vector"] for r in page], np.float32), k + 1, fields=())
        for r, hits in zip(page, found, strict=True):
            row = len(details)
            details[row] = (r["path"], r["size"], r["mtime_ns"], r["width"], r["height"], r["content_hash"])
            neighbours[row] = [(h["path"], h["score"]) for h in hits]
        if progress:
            progress(len(details), total, "k-NN")
    return details, neighbours


def _vectors(coll: PhotoCollection, paths: list[str], n: int, rows: list[int]) -> np.ndarray:
    """An (n, d) matrix holding the vectors of `rows` (the photos that can be in a group; other rows stay zero)."""
    vec = {v["path"]: v["vector"] for v in coll.get(paths, ["path", "vector"])} if paths else {}
    dim = len(next(iter(vec.values()))) if vec else 1
    matrix = np.zeros((n, dim), np.float32)
    for r, p in zip(rows, paths, strict=True):
        matrix[r] = vec[p]
    return matrix
