"""Bring the catalog in step with the photo folders: decode on worker threads while the encoder runs.

Work is committed batch by batch, so a killed run loses at most the batch in flight and the next run resumes.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .catalog import Catalog, content_hash
from .decode import decode
from .encoders import ImageEncoder
from .errors import DecodeError, EncoderFailed
from .picture import Picture, signature
from .regions import OFF, RegionSpec, decode_side, encode_groups
from .regions import tensors as region_tensors
from .scan import scan
from .settings import BATCH_SIZE

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, current path)


@dataclass
class IndexReport:
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    moved: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    pictures: int = 0  # photos already indexed whose picture signature was computed in this run (no re-encoding)

    def as_dict(self) -> dict:
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "moved": self.moved,
            "failed": len(self.failed),
            "failures": [{"path": p, "reason": r} for p, r in self.failed],
            "missing_roots": self.missing_roots,
            "pictures": self.pictures,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Job:
    path: str
    size: int
    mtime_ns: int
    known: bool  # the catalog already has a row for this path


@dataclass
class _Result:
    job: _Job
    hash: str | None = None
    tensor: np.ndarray | None = None
    crops: list[np.ndarray] = field(default_factory=list)  # region crops, preprocessed (regions on)
    width: int = 0
    height: int = 0
    reason: str | None = None
    picture: Picture | None = None


def plan(known: dict, roots: list[Path], cancel=None) -> tuple[list[_Job], set[str], int]:
    """Compare the folders with the catalog rows: (jobs to (re)process, paths no longer found, unchanged count)."""
    present = [str(r) for r in roots if r.exists()]  # an unplugged drive is not a folder of deleted photos
    return plan_listing(known, stat_all(scan(roots, cancel=cancel)), present)


def plan_listing(known: dict, listing: Iterable[tuple[str, int, int]], present: list[str]):
    """plan() for any listing of (path, size, mtime_ns); `present` are the roots that were found (paths or URLs).

    `known` maps a path to a row with status, size and mtime_ns; a row that is not pending, with the same size and
    mtime, is unchanged (a failed photo is retried when the file changes).
    """
    jobs, seen, unchanged = [], set(), 0
    for p, size, mtime_ns in listing:
        seen.add(p)
        row = known.get(p)
        if row and row.status != "pending" and row.size == size and row.mtime_ns == mtime_ns:
            unchanged += 1
        else:
            jobs.append(_Job(p, size, mtime_ns, row is not None))
    prefixes = tuple(r.rstrip("/") + "/" for r in present)
    exact = set(present)
    gone = {p for p in known if p not in seen and (p.startswith(prefixes) or p in exact)}
    return jobs, gone, unchanged


def stat_all(paths: Iterable[Path]) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each path that can still be read."""
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        yield str(path), st.st_size, st.st_mtime_ns


def run(
    catalog: Catalog,
    encoder: ImageEncoder,
    roots: list[Path],
    batch_size: int = BATCH_SIZE,
    workers: int = 2,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    regions: RegionSpec = OFF,
) -> IndexReport:
    """Index `roots` into `catalog`; returns what changed. Cancelling keeps what was committed.

    With `regions` on, each photo's crops are prepared on the decode threads and encoded with it.
    """
    t0 = time.perf_counter()
    cancel = cancel or (lambda: False)
    known = catalog.rows()
    jobs, gone, unchanged = plan(known, roots, cancel)
    report = IndexReport(unchanged=unchanged, missing_roots=[str(r) for r in roots if not r.exists()])
    if cancel():
        report.cancelled = True
        return report
    known_hashes = catalog.hashes()
    gone_by_hash = {known[p].hash: p for p in sorted(gone) if known[p].hash and known[p].status == "ok"}
    pre = encoder.preprocess

    def work(job: _Job) -> _Result:
        return _decode_job(job, pre, known_hashes, regions)

    batch: list[_Result] = []
    for done, res in enumerate(_prefetch(work, jobs, workers), 1):
        batch.append(res)
        if progress:
            progress(done, len(jobs), res.job.path)
        if len(batch) >= batch_size:
            _commit(catalog, encoder, batch, gone_by_hash, gone, report, regions)
            batch = []
        if cancel():
            report.cancelled = True
            break
    _commit(catalog, encoder, batch, gone_by_hash, gone, report, regions)
    if not report.cancelled:
        report.removed = catalog.delete_paths(sorted(gone))
        report.pictures, report.cancelled = _add_pictures(catalog, decode_side(regions, pre), batch_size, workers,
                                                          progress, cancel)
    report.seconds = time.perf_counter() - t0
    return report


def _decode_job(job: _Job, pre, known_hashes: Set[str], regions: RegionSpec = OFF) -> _Result:
    res = _Result(job)
    try:
        res.hash = content_hash(Path(job.path), job.size)
        if res.hash in known_hashes:
            return res  # same content as a photo already encoded: its vector is reused, no decode needed
        image = decode(job.path, min_side=decode_side(regions, pre))
        res.width, res.height = image.info.get("source_size", image.size)
        res.tensor = pre(image)
        res.crops = region_tensors(regions, image, pre)
        res.picture = _signature(image, job.path)
    except DecodeError as e:
        res.reason = str(e)
    except OSError as e:
        res.reason = f"cannot read file ({e.strerror or e})"
    except Exception as e:  # a hostile file must never end the run
        log.exception("unexpected failure decoding %s", job.path)
        res.reason = f"unexpected error ({type(e).__name__}: {e})"
    return res


def _commit(catalog, encoder, batch: list[_Result], gone_by_hash, gone: set[str], report: IndexReport,
            regions: RegionSpec = OFF) -> None:
    if not batch:
        return
    ok, failed, moved = [], [], []
    for i, r in enumerate(batch):
        if r.tensor is None and r.reason is None and catalog.vector_by_hash(r.hash) is None:
            # its twin changed meanwhile: decode it after all
            batch[i] = _decode_job(r.job, encoder.preprocess, set(), regions)
    to_encode = [r for r in batch if r.tensor is not None]
    for r, vs in zip(to_encode, _encode(encoder, to_encode), strict=True):
        if vs is not None:
            ok.append((r.job.path, r.job.size, r.job.mtime_ns, r.hash, r.width, r.height, vs[0],
                       vs[1:] if len(vs) > 1 else None, r.picture))
    for r in batch:
        if r.reason is not None:
            failed.append((r.job.path, r.job.size, r.job.mtime_ns, r.reason))
            report.failed.append((r.job.path, r.reason))
        elif r.tensor is None:
            old = None if r.job.known else gone_by_hash.pop(r.hash, None)
            if old is not None:  # a moved photo keeps its row, so its vector and visual tokens stay
                gone.discard(old)
                moved.append((old, r.job.path, r.job.size, r.job.mtime_ns))
                report.moved += 1
            else:
                v, w, h, crops, picture = catalog.vector_by_hash(r.hash)
                ok.append((r.job.path, r.job.size, r.job.mtime_ns, r.hash, w, h, v, crops, picture))
    catalog.write_batch(ok, failed, moved)
    report.indexed += len(ok)


def _signature(image, path: str) -> Picture | None:
    try:
        return signature(image)
    except Exception:  # the signature is an extra: a photo that decoded is indexed even if this fails
        log.exception("cannot compute the picture signature of %s", path)
        return None


def _add_pictures(catalog: Catalog, min_side: int | None, batch_size: int, workers: int,
                  progress: Progress | None, cancel: Callable[[], bool]) -> tuple[int, bool]:
    """Compute the picture signature of indexed photos that lack one (a library from before signatures existed):
    a decode each, no encoder. Returns (how many were added, cancelled)."""
    todo = catalog.without_picture()

    def work(item: tuple[int, str, int]) -> tuple[int, Picture | None]:
        key, path, _ = item
        try:
            return key, _signature(decode(path, min_side=min_side), path)
        except (DecodeError, OSError) as e:  # changed or gone since it was indexed: the next run sees it
            log.info("no picture signature for %s: %s", path, e)
            return key, None

    batch: list[tuple[int, Picture]] = []
    added = 0
    for done, (key, picture) in enumerate(_prefetch(work, todo, workers), 1):
        if picture is not None:
            batch.append((key, picture))
        if progress:
            progress(done, len(todo), "picture signatures")
        if len(batch) >= batch_size or (cancel() and batch):
            catalog.write_pictures(batch)
            added, batch = added + len(batch), []
        if cancel():
            return added, True
    catalog.write_pictures(batch)
    return added + len(batch), False


def _encode(encoder, results: list[_Result]) -> list[np.ndarray | None]:
    """Per result its vectors (own first, then its crops'); a photo the encoder fails on, or gets a NaN/inf vector
    for, gets a reason instead.

    A failed batch is retried photo by photo; when every photo fails the encoder itself is broken, and the run
    stops with its message (recording good photos as failed would keep them out until they change).
    """
    if not results:
        return []
    try:
        vectors: list[np.ndarray | None] = list(encode_groups(encoder, [_tensors(r) for r in results]))
    except EncoderFailed:
        vectors = []
        for r in results:
            try:
                vectors.append(encode_groups(encoder, [_tensors(r)])[0])
            except EncoderFailed as e:
                r.reason, error = str(e), e
                vectors.append(None)
        if all(v is None for v in vectors):
            raise error from None
    for i, (r, v) in enumerate(zip(results, vectors, strict=True)):
        if v is not None and not np.isfinite(v).all():
            r.reason, vectors[i] = "the encoder gave a vector that is not finite (NaN or infinity)", None
    return vectors


def _tensors(r: _Result) -> tuple[np.ndarray, ...]:
    """What a decoded photo gives the encoder: its own tensor, then its crops'."""
    assert r.tensor is not None, r.job.path  # _encode is handed decoded photos only
    return (r.tensor, *r.crops)


def _prefetch(fn, items: Iterable, workers: int, window: int | None = None) -> Iterator:
    """map(fn, items) on a thread pool, in order, with at most `window` items in flight."""
    window = window or max(4, workers * 4)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: deque = deque()
        it = iter(items)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                break
        while pending:
            fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(fn, nxt))
            yield fut.result()


def default_workers(threads: int) -> int:
    return max(1, min(threads, os.cpu_count() or 1))


Job = _Job  # what a worker is handed: a path with the size and mtime the plan saw


def decode_jobs(jobs: Iterable[_Job], preprocess, known_hashes: Set[str], workers: int) -> Iterator[_Result]:
    """Hash, decode and preprocess `jobs` on `workers` threads, in order, as run() does (the cluster workers too).

    A result has a tensor to encode, or a reason it failed, or neither: its content hash is in `known_hashes`.
    """
    return _prefetch(lambda job: _decode_job(job, preprocess, known_hashes), jobs, workers)
