"""Duplicate groups of three kinds, and safe moves of the extra copies.

- identical files: the same content hash;
- the same picture: resized, re-compressed, converted, lightly cropped or EXIF-rotated versions, told by the picture
  signature (edgeret.picture: pHash + thumbnail) whatever the encoder; candidates are pHash bucket pairs
  (multi-index hashing) and every k-NN pair, so a copy the embedding places far is still found;
- similar shots: cosine at least the threshold but not the same picture (bursts, the same scene again); with a
  verifier (a PairReranker), borderline pairs (|cosine - threshold| < margin) are kept only when it says "same".

Each photo's k nearest neighbours come from the library's own index (USearch HNSW for large libraries, blocked exact
matrix products below that), never from an all-pairs loop; groups are union-find components.

Nothing here deletes a file: `move_duplicates` moves the non-originals to a folder the user chose, writing an undo
log first, and `undo_moves` puts them back.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import Cancelled, DecodeError, UsageError
from .picture import BUCKET_DISTANCE, SAME_DISTANCE, Picture, bucket_pairs, distances, judge, worth_searching
from .settings import DUPLICATE_K, DUPLICATE_MARGIN, DUPLICATE_THRESHOLD

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, stage), like the indexer's
Cancel = Callable[[], bool]

CHUNK = 2048  # queries per k-NN step: the unit of progress and cancel
# The all-rows exact k-NN (BLAS blocks) costs n² dot products yet beat building an HNSW graph at 20k vectors
# (7 s vs 33 s build + 9 s search, scripts/bench_duplicates.py --exact): libraries searched exactly (< 50k) use it;
# a throwaway HNSW is built only past this size, when the library was configured to search exactly anyway.
EXACT_KNN_BELOW = 100_000
LOG_VERSION = 1


# the graph ----------------------------------------------------------------------------------------------------
def knn(
    matrix: np.ndarray,
    k: int,
    index=None,
    keys: np.ndarray | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(neighbour rows (n, k), cosines (n, k)) of each row of `matrix`, itself excluded; missing slots are -1.

    `index` is a USearch Index whose keys are `keys` (one per row); without it the k-NN is exact, computed in
    blocked matrix products, which is right for libraries the size the exact search index serves.
    """
    n = len(matrix)
    k = max(1, min(k, n - 1)) if n > 1 else 1
    nbr = np.full((n, k), -1, np.int64)
    sim = np.full((n, k), -np.inf, np.float32)
    if n < 2:
        return nbr, sim
    matrix = np.ascontiguousarray(matrix, np.float32)
    if index is not None:
        assert keys is not None, "an index needs the keys of its rows"
        order = np.argsort(keys)
        sorted_keys = keys[order]
    for start in range(0, n, CHUNK):
        if cancel and cancel():
            raise Cancelled("duplicate search cancelled")
        stop = min(n, start + CHUNK)
        if index is None:
            rows, cos = _exact_block(matrix, matrix[start:stop], k)
        else:
            rows, cos = _hnsw_block(index, matrix[start:stop], k, order, sorted_keys, threads)
            # HNSW can leave a tight cluster unreachable (measured: a whole cluster of 4 near-copies among 1,200
            # vectors, one build in five), exactly the structure duplicates form. A search that misses the
            # query's own vector is such a case: redo those rows exactly, a few matrix-vector products.
            lost = np.flatnonzero(~(rows == np.arange(start, stop)[:, None]).any(axis=1))
            if len(lost):
                rows[lost], cos[lost] = _exact_block(matrix, matrix[start + lost], k)
        self_hit = rows == np.arange(start, stop)[:, None]
        rows, cos = np.where(self_hit, -1, rows), np.where(self_hit, -np.inf, cos)
        keep = np.argsort(-cos, axis=1, kind="stable")[:, :k]
        nbr[start:stop] = np.take_along_axis(rows, keep, 1)
        sim[start:stop] = np.take_along_axis(cos, keep, 1)
        if progress:
            progress(stop, n, "neighbours")
    return nbr, sim


def _exact_block(matrix: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = queries @ matrix.T
    top = np.argpartition(-sims, k, axis=1)[:, : k + 1]  # k + 1: the photo itself is among them
    return top, np.take_along_axis(sims, top, 1)


def _hnsw_block(index, queries, k, order, sorted_keys, threads) -> tuple[np.ndarray, np.ndarray]:
    m = index.search(queries, k + 1, threads=threads)
    found = np.atleast_2d(m.keys).astype(np.int64)
    cos = (1.0 - np.atleast_2d(m.distances)).astype(np.float32)
    valid = np.arange(found.shape[1])[None, :] < np.atleast_1d(m.counts)[:, None]  # rows are padded past counts
    pos = np.clip(np.searchsorted(sorted_keys, found), 0, len(sorted_keys) - 1)
    valid &= sorted_keys[pos] == found
    return np.where(valid, order[pos], -1), np.where(valid, cos, -np.inf).astype(np.float32)


class UnionFind:
    """Disjoint sets over 0..n-1 (a Python list: element access is several times faster than numpy's here)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        p = self.parent
        root = a
        while p[root] != root:
            root = p[root]
        while p[a] != root:  # path compression keeps later finds O(1)-ish
            p[a], a = root, p[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def components(self) -> list[list[int]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            groups[self.find(i)].append(i)
        return [g for g in groups.values() if len(g) > 1]


def candidate_pairs(nbr: np.ndarray, sim: np.ndarray, low: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (i, j, cosine) edges with i < j and cosine >= low."""
    i = np.repeat(np.arange(len(nbr)), nbr.shape[1])
    j, c = nbr.ravel(), sim.ravel()
    ok = (j >= 0) & (c >= low)
    i, j, c = i[ok], j[ok], c[ok]
    a, b = np.minimum(i, j), np.maximum(i, j)
    _, first = np.unique(a * len(nbr) + b, return_index=True)
    return a[first], b[first], c[first]


def group_rows(
    matrix: np.ndarray,
    threshold: float = DUPLICATE_THRESHOLD,
    k: int = DUPLICATE_K,
    index=None,
    keys: np.ndarray | None = None,
    same: Sequence[tuple[int, int]] = (),
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[list[int]]:
    """Groups of row numbers whose k-NN cosine reaches `threshold` (plus `same` pairs, joined unconditionally)."""
    nbr, sim = knn(matrix, k, index, keys, progress, cancel)
    a, b, _ = candidate_pairs(nbr, sim, threshold)
    uf = UnionFind(len(matrix))
    for x, y in [*zip(a.tolist(), b.tolist(), strict=True), *same]:
        uf.union(x, y)
    return uf.components()


# groups of library photos -------------------------------------------------------------------------------------
IDENTICAL, SAME_PICTURE, SIMILAR = "identical", "same_picture", "similar"
KINDS = (IDENTICAL, SAME_PICTURE, SIMILAR)
COPY_KINDS = (IDENTICAL, SAME_PICTURE)  # groups whose extra members are copies, safe to move out


@dataclass(frozen=True)
class Member:
    key: int
    path: str
    size: int  # bytes
    width: int
    height: int
    mtime: float  # seconds since the epoch
    similarity: float  # cosine to the group's original (1.0 for the original itself)
    original: bool = False
    # evidence against the group's original (None where it does not apply, or the photo has no picture hash yet)
    identical_to: str | None = None  # path of an earlier member with the same file content (content hash)
    distance: int | None = None  # pHash bits that differ (of 64)
    correlation: float | None = None  # 32×32 thumbnail correlation, after the crop search
    colour: float | None = None  # mean colour difference (0-255)
    p_same: float | None = None  # the re-ranker's P(same) for the pair that joined it (--verify)

    def evidence(self, words: EvidenceWords) -> str:
        """This member's evidence against its group's original, in `words` (the CLI's short ones, the app's long)."""
        if self.original:
            return words.original
        if self.identical_to is not None:
            return words.identical
        parts = [words.similarity.format(self.similarity)]
        if self.distance is not None:
            parts.append(words.picture.format(self.distance, self.correlation))
        if self.p_same is not None:
            parts.append(words.p_same.format(self.p_same))
        return words.sep.join(parts)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["date"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.mtime))
        return d


@dataclass(frozen=True)
class EvidenceWords:
    """How a UI words a member's evidence (Member.evidence): labels and format strings."""

    original: str
    identical: str
    similarity: str  # {0}: cosine
    picture: str  # {0}: hash distance, {1}: thumbnail correlation
    p_same: str  # {0}: the re-ranker's P
    sep: str


@dataclass
class Group:
    members: list[Member]  # the original first
    verified: int = 0  # borderline pairs the verifier confirmed inside this group
    kind: str = SIMILAR  # IDENTICAL: one file's copies; SAME_PICTURE: one picture's versions; SIMILAR: other shots
    why: str = ""  # why the first member is taken as the original

    @property
    def original(self) -> Member:
        return self.members[0]

    @property
    def copies(self) -> list[Member]:
        return self.members[1:]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "size": len(self.members), "original": self.original.path,
                "why_original": self.why, "verified": self.verified, "members": [m.as_dict() for m in self.members]}


def original_first(members: list[Member]) -> list[Member]:
    """Largest resolution, then largest file, then oldest, then path: the copy most likely to be the original."""
    ranked = sorted(members, key=lambda m: (-m.width * m.height, -m.size, m.mtime, m.path))
    return [replace(m, original=i == 0) for i, m in enumerate(ranked)]


def why_original(ranked: list[Member]) -> str:
    """The rule of original_first that chose ranked[0] over the runner-up, in words."""
    if len(ranked) < 2:
        return ""
    a, b = ranked[0], ranked[1]
    if a.width * a.height != b.width * b.height:
        return f"largest picture ({a.width}×{a.height} px; next {b.width}×{b.height})"
    if a.size != b.size:
        return f"same pixel size, largest file ({a.size:,} B; next {b.size:,} B)"
    if a.mtime != b.mtime:
        return "same pixel and file size, oldest file"
    return "same pixel size, file size and date: first by path"


@dataclass
class Pairs:
    """The classified edges of the photo graph, as row pairs (i < j)."""

    same: list[tuple[int, int]]  # the same picture (pHash + thumbnail evidence)
    similar: list[tuple[int, int, float]]  # cosine at least the threshold (or confirmed by the verifier), not same
    border: list[tuple[int, int, float]]  # cosine within the verifier's margin below/above: for the verifier


def classify_pairs(
    nbr: np.ndarray,
    sim: np.ndarray,
    phashes: np.ndarray,
    pictures: Callable[[Sequence[int]], dict[int, Picture]],
    threshold: float,
    margin: float | None = None,
) -> Pairs:
    """Sort the k-NN graph and the pHash buckets into same-picture, similar and borderline pairs.

    `phashes` has one int64 per row, and `pictures(rows)` returns the rows' signatures (rows without one are
    missing). Same-picture candidates are the pHash bucket pairs (multi-index hashing: found whatever the encoder
    thinks) plus every k-NN pair, each kept when its hash distance allows it, then judged on the thumbnails.
    """
    have = np.asarray([p is not None for p in phashes]) if phashes.dtype == object else np.ones(len(phashes), bool)
    hashes = np.where(have, phashes, 0).astype(np.int64)
    rows = np.flatnonzero(have)
    bi, bj = bucket_pairs(hashes[rows])
    bi, bj = rows[bi], rows[bj]
    ki, kj, kc = candidate_pairs(nbr, sim, -np.inf)
    ci, cj = np.concatenate([bi, ki]), np.concatenate([bj, kj])
    # a chance bucket-mate is judged only within BUCKET_DISTANCE, an embedding neighbour up to SAME_DISTANCE
    limit = np.r_[np.full(len(bi), BUCKET_DISTANCE), np.full(len(ki), SAME_DISTANCE)]
    keep = have[ci] & have[cj]
    ci, cj, limit = ci[keep], cj[keep], limit[keep]
    keep = distances(hashes[ci], hashes[cj]) <= limit
    ci, cj = ci[keep], cj[keep]
    n = len(nbr)
    code = np.unique(ci * n + cj)
    ci, cj = code // n, code % n
    pics = pictures(sorted(set(ci.tolist()) | set(cj.tolist())))
    pairs = [(x, y) for x, y in zip(ci.tolist(), cj.tolist(), strict=True) if x in pics and y in pics]
    joined = UnionFind(n)
    same = []
    # the cheap tests first, all pairs at once; the crop search then only for pairs a search could still make the
    # same picture and that are not yet joined through others (a crop of a picture with 9 other versions is searched
    # against one of them, not all 9)
    quick = judge([pics[x] for x, _ in pairs], [pics[y] for _, y in pairs], search=False)
    for (x, y), e in zip(pairs, quick, strict=True):
        if e.same:
            same.append((x, y))
            joined.union(x, y)
    rest = [pair for pair, e in zip(pairs, quick, strict=True) if not e.same]
    worth = worth_searching([pics[x] for x, _ in rest], [pics[y] for _, y in rest])
    for (x, y), w in zip(rest, worth.tolist(), strict=True):
        if w and joined.find(x) != joined.find(y) and judge([pics[x]], [pics[y]])[0].same:
            same.append((x, y))
            joined.union(x, y)
    low = threshold if margin is None else threshold - margin
    similar, border = [], []
    for x, y, c in zip(ki.tolist(), kj.tolist(), kc.tolist(), strict=True):
        if c < low or joined.find(x) == joined.find(y):
            continue
        if margin is not None and c < threshold + margin:
            border.append((x, y, c))
        else:
            similar.append((x, y, c))
    return Pairs(same, similar, border)


def find_duplicates(
    library,
    threshold: float = DUPLICATE_THRESHOLD,
    k: int = DUPLICATE_K,
    verifier=None,
    margin: float = DUPLICATE_MARGIN,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[Group]:
    """Groups of identical files, of the same picture, and of similar shots in `library`.

    Identical files (content hash) and versions of one picture (edgeret.picture) form copy groups; photos whose
    cosine reaches `threshold` without being the same picture form similar groups, in which each copy group takes
    part through its original (so no photo is in two groups of one kind). `verifier` is a PairReranker
    (open_verifier); with it, pairs within `margin` of the threshold are judged by it (P(same) >= 0.5 joins them).
    Order: copy groups (identical, then same picture), then similar groups, each largest first.
    """
    if not 0.0 < threshold <= 1.0:
        raise UsageError("the threshold is a cosine similarity in (0, 1]")
    keys, matrix = library.catalog.vectors()
    if len(keys) < 2:
        return []
    nbr, sim = knn(matrix, k, _usearch_for(library, keys, matrix), keys, progress, cancel)
    details = _details(library)
    by_key = library.catalog.phashes()
    phashes = np.array([by_key.get(int(key)) for key in keys.tolist()], object)
    row_key = keys.tolist()

    def pictures(rows: Sequence[int]) -> dict[int, Picture]:
        found = library.catalog.pictures([row_key[r] for r in rows])
        return {r: found[row_key[r]] for r in rows if row_key[r] in found}

    pairs = classify_pairs(nbr, sim, phashes, pictures, threshold, margin if verifier is not None else None)
    p_same: dict[int, float] = {}
    similar = [(x, y) for x, y, _ in pairs.similar]
    if verifier is not None:
        for x, y, p in _verify(verifier, pairs.border, keys, details, threshold, progress, cancel):
            similar.append((x, y))
            for r in (x, y):
                p_same[r] = max(p_same.get(r, 0.0), p)
    return assemble(keys, matrix, details, pairs.same, similar, pictures, p_same)


def assemble(keys: np.ndarray, matrix: np.ndarray, details: dict[int, tuple], same: Sequence[tuple[int, int]],
             similar: Sequence[tuple[int, int]], pictures: Callable[[Sequence[int]], dict[int, Picture]] | None = None,
             p_same: dict[int, float] | None = None) -> list[Group]:
    """Groups from row pairs: copy groups (identical content hash, plus `same` pairs), then similar groups over
    `similar` pairs, in which each copy group takes part through its original. Local and cluster alike."""
    p_same = p_same or {}
    copies = UnionFind(len(keys))
    for rows in _same_hash(details, keys):  # identical files group even when more copies exist than k
        for r in rows[1:]:
            copies.union(rows[0], r)
    for x, y in same:
        copies.union(x, y)
    # a row removed by a concurrent writer since the vectors were read has no details: leave it out
    present = [kept for rows in copies.components() if len(kept := [r for r in rows if int(keys[r]) in details]) > 1]
    copy_groups = [_group(rows, keys, matrix, details, pictures) for rows in present]
    stands_for = {r: r for r in range(len(keys))}  # a copy stands for its group's original among similar shots
    for rows, g in zip(present, copy_groups, strict=True):
        head = next(r for r in rows if int(keys[r]) == g.original.key)
        stands_for.update((r, head) for r in rows)
    shots = UnionFind(len(keys))
    for x, y in similar:
        if stands_for[x] != stands_for[y]:
            shots.union(stands_for[x], stands_for[y])
    similar_groups = []
    for rows in shots.components():
        rows = [r for r in rows if int(keys[r]) in details]
        if len(rows) > 1:
            g = _group(rows, keys, matrix, details, pictures, kind=SIMILAR, p_same=p_same)
            g.verified = sum(1 for r in rows if r in p_same)
            similar_groups.append(g)
    order = {IDENTICAL: 0, SAME_PICTURE: 1, SIMILAR: 2}
    return sorted([*copy_groups, *similar_groups], key=lambda g: (order[g.kind], -len(g.members), g.original.path))


def _usearch_for(library, keys: np.ndarray, matrix: np.ndarray):
    """The library's HNSW index when it has one of photo vectors only; a throwaway one above EXACT_KNN_BELOW; else
    None (exact k-NN). Duplicates compare whole photos: an index that also holds region vectors is not reused."""
    index = library.refresh_index()
    if index.kind == "hnsw" and len(index) == len(keys):
        return index.index
    if len(keys) < EXACT_KNN_BELOW:
        return None
    from .vectors import HnswIndex

    return HnswIndex.build(keys, matrix).index  # k-NN of every photo is quadratic when exact: n² vs n·log n


def _group(rows: list[int], keys, matrix, details, pictures=None, kind: str | None = None,
           p_same: dict[int, float] | None = None) -> Group:
    """A Group of `rows`, its original first, each member with its evidence against the original. Without `kind`:
    IDENTICAL when every member has one content hash, else SAME_PICTURE (or SIMILAR without `pictures`)."""
    members = []
    for r in rows:
        path, size, mtime_ns, w, h, _ = details[int(keys[r])]
        w, h = _pixel_size(path, (w or 0, h or 0))
        members.append(Member(int(keys[r]), path, size, w, h, mtime_ns / 1e9, 1.0))
    ranked = original_first(members)
    row_of = {int(keys[r]): r for r in rows}
    head = row_of[ranked[0].key]
    digest = {r: details[int(keys[r])][5] for r in rows}
    if kind is None:
        same_file = len(set(digest.values())) == 1 and digest[head] is not None
        kind = IDENTICAL if same_file else SAME_PICTURE if pictures is not None else SIMILAR
    pics = pictures(rows) if pictures is not None else {}
    others = [m for m in ranked[1:] if head in pics and row_of[m.key] in pics]
    verdicts = judge([pics[head]] * len(others), [pics[row_of[m.key]] for m in others]) if others else []
    evidence = dict(zip([m.key for m in others], verdicts, strict=True))
    ref = matrix[head]
    out: list[Member] = []
    first_with: dict[str, str] = {}
    for m in ranked:
        r = row_of[m.key]
        e = evidence.get(m.key)
        twin = first_with.setdefault(digest[r], m.path) if digest[r] is not None else m.path
        out.append(replace(
            m, similarity=round(float(matrix[r] @ ref), 4), identical_to=None if twin == m.path else twin,
            distance=None if e is None else e.distance, correlation=None if e is None else e.correlation,
            colour=None if e is None else e.colour, p_same=None if p_same is None else p_same.get(r)))
    return Group(out, kind=kind, why=why_original(ranked))


def _pixel_size(path: str, fallback: tuple[int, int]) -> tuple[int, int]:
    """The file's stored pixel size, read from its header.

    The catalog's width/height are those of the decoded image, which JPEG draft mode shrinks (a 4000 px photo is
    recorded at ~500 px), so they cannot tell an original from its resized copy; formats Pillow cannot open
    (RAW) keep the catalog's values.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # unreadable or not Pillow's: the catalog's size is the best we have
        return fallback


def _details(library) -> dict[int, tuple]:
    """key -> (path, size, mtime_ns, width, height, hash) from the catalog."""
    return library.catalog.details()


def _same_hash(details: dict[int, tuple], keys: np.ndarray) -> list[list[int]]:
    by_hash: dict[str, list[int]] = defaultdict(list)
    for r, key in enumerate(keys.tolist()):
        digest = details[key][5] if key in details else None
        if digest:
            by_hash[digest].append(r)
    return [rows for rows in by_hash.values() if len(rows) > 1]


def _verify(verifier, border, keys, details, threshold, progress, cancel) -> list[tuple[int, int, float]]:
    """(x, y, P(same)) of the borderline pairs the verifier judges to show the same object (an abstention, P NaN,
    falls back to cosine)."""
    from .decode import decode
    from .library import Hit

    border = [(x, y, c) for x, y, c in border if int(keys[x]) in details and int(keys[y]) in details]
    by_query: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for x, y, c in border:
        by_query[x].append((y, c))
    out, done = [], 0
    for x, cands in by_query.items():
        if cancel and cancel():
            raise Cancelled("duplicate verification cancelled")
        try:
            query = decode(details[int(keys[x])][0])
        except DecodeError as e:
            log.warning("cannot verify pairs of %s: %s", details[int(keys[x])][0], e)
            continue
        hits = [Hit(int(keys[y]), details[int(keys[y])][0], c) for y, c in cands]
        for i, p in verifier.score(query, verifier.candidates(hits), cancel=cancel):
            y, c = cands[i]
            if (p >= 0.5) if p == p else (c >= threshold):  # NaN: the verifier could not judge this pair
                out.append((x, y, float(p)))
            done += 1
            if progress:
                progress(done, len(border), "verify")
    return out


def open_verifier(library, name: str | None = None, **kw):
    """The MLLM re-ranker when one is installed, else classical spatial verification (`sv`)."""
    from .errors import ModelError
    from .rerankers import open_reranker

    if name:
        return open_reranker(name, library, **kw)
    try:
        return open_reranker("mllm", library, **kw)
    except (ModelError, ImportError) as e:  # ModelMissing included: no MLLM installed on this machine
        log.info("no MLLM re-ranker (%s): verifying with sv", e)
        return open_reranker("sv", library)


# moving copies ------------------------------------------------------------------------------------------------
@dataclass
class MoveEntry:
    src: str
    dst: str
    size: int
    done: bool = False


@dataclass
class MoveReport:
    log: str
    moved: list[MoveEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    cancelled: bool = False


def move_duplicates(
    groups: Sequence[Group],
    dest: Path | str,
    roots: Sequence[Path | str] = (),
    log_path: Path | str | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> MoveReport:
    """Move every non-original of `groups` under `dest` (keeping its path relative to its library root).

    The undo log (JSON) is written before the first move and rewritten as moves complete. `dest` must lie
    outside the library roots, or the moved copies would be indexed (and grouped) again.
    """
    dest = Path(dest).expanduser().resolve()
    root_paths = [Path(r).expanduser().resolve() for r in roots]
    for r in root_paths:
        if dest == r or r in dest.parents:
            raise UsageError(f"{dest} is inside the library folder {r}: choose a folder outside the library")
    dest.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_path) if log_path else dest / time.strftime("edgeret-moves-%Y%m%d-%H%M%S.json")
    entries: list[MoveEntry] = []
    taken: set[Path] = set()
    for g in groups:
        for m in g.copies:
            target = _unique(dest / _relative(Path(m.path), root_paths), taken)
            taken.add(target)
            entries.append(MoveEntry(m.path, str(target), m.size))
    report = MoveReport(str(log_file))
    _write_log(log_file, dest, entries)
    try:
        for n, entry in enumerate(entries, 1):
            if cancel and cancel():
                report.cancelled = True
                break
            reason = _move(Path(entry.src), Path(entry.dst), entry.size)
            if reason:
                report.skipped.append((entry.src, reason))
            else:
                entry.done = True
                report.moved.append(entry)
            if progress:
                progress(n, len(entries), entry.src)
    finally:
        _write_log(log_file, dest, entries)
    return report


def undo_moves(log_path: Path | str, progress: Progress | None = None, cancel: Cancel | None = None) -> MoveReport:
    """Move back every file an undo log records as moved; never overwrites a file that reappeared meanwhile."""
    log_file = Path(log_path).expanduser()
    try:
        raw = json.loads(log_file.read_text("utf-8"))
        entries = [MoveEntry(**e) for e in raw["moves"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{log_file} is not an edgeret undo log: {e}") from None
    report = MoveReport(str(log_file))
    try:
        for n, entry in enumerate(entries, 1):
            if cancel and cancel():
                report.cancelled = True
                break
            if not entry.done and not Path(entry.dst).exists():
                continue  # never moved
            reason = _move(Path(entry.dst), Path(entry.src), entry.size)
            if reason:
                report.skipped.append((entry.dst, reason))
            else:
                entry.done = False
                report.moved.append(MoveEntry(entry.dst, entry.src, entry.size, True))
            if progress:
                progress(n, len(entries), entry.dst)
    finally:
        _write_log(log_file, Path(raw.get("dest", log_file.parent)), entries)
    return report


def _relative(path: Path, roots: list[Path]) -> Path:
    for r in sorted(roots, key=lambda r: -len(r.parts)):
        if r in path.parents:
            return Path(r.name) / path.relative_to(r)
    return Path(path.name)


def _unique(target: Path, taken: set[Path]) -> Path:
    candidate, n = target, 1
    while candidate in taken or candidate.exists():
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
        n += 1
    return candidate


def _move(src: Path, dst: Path, size: int) -> str | None:
    """Move one file without ever overwriting; returns a reason when it was not moved."""
    try:
        if not src.is_file():
            return "no longer there"
        if src.stat().st_size != size:
            return "changed since it was grouped"
        if dst.exists():
            return f"{dst} already exists"
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(src, dst)  # atomic on one file system; checked above that nothing is overwritten
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            shutil.move(str(src), str(dst))  # another file system: copy, then remove the source, as `mv` does
    except OSError as e:
        return f"cannot move ({e.strerror or e})"
    return None


def _write_log(path: Path, dest: Path, entries: list[MoveEntry]) -> None:
    data = {"version": LOG_VERSION, "tool": "edgeret duplicates", "dest": str(dest),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "moves": [asdict(e) for e in entries]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), "utf-8")
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated log


def refresh_after_moves(library_path: Path | str, threads: int = 1) -> bool:
    """Bring the library in step with its folders after moves or an undo (an index run: moved-out photos are
    forgotten, moved-back ones found again); False when another writer holds the library (it catches up itself)."""
    from .errors import LibraryBusy
    from .library import Library

    try:
        with Library(library_path, writable=True) as lib:
            lib.index(threads=threads)
    except LibraryBusy:
        return False
    return True


def keep_only(group: Group, keep: set[int]) -> Group:
    """The group to hand move_duplicates so that exactly the members whose keys are in `keep` stay (one of them
    first); the others are its copies."""
    kept = [m for m in group.members if m.key in keep]
    if not kept:
        raise UsageError("keep at least one photo of the group")
    return replace(group, members=kept[:1] + [m for m in group.members if m.key not in keep])
