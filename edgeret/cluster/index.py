"""`edgeret cluster index`: plan against the collection, encode on a Ray Data actor pool, write batch by batch.

The plan is the local indexer's (indexer.plan_listing): a path whose size and mtime match its row is unchanged, a
failed photo is retried when it changes, a photo gone from a source that is present is removed. Photos whose content
hash is already in the collection (copies, moved files) are hashed but not decoded or encoded: their vector is
copied. Each batch's rows are upserted by path as it comes back, so a killed job loses at most the batches in flight
and its re-run neither duplicates nor misses a photo.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..encoders import ImageEncoder
from ..indexer import IndexReport, Progress, plan_listing
from ..library import encoder_folder
from ..settings import CLUSTER_COLLECTION, CLUSTER_THREADS, CLUSTER_WORKERS
from . import listing
from .collection import PhotoCollection, row
from .runtime import MILVUS_LITE, milvus_client, ray_session, run_on_pool
from .state import JobState
from .workers import PROVIDERS, EncodeWorker


@dataclass(frozen=True)
class ClusterOptions:
    """Where a cluster command runs and writes (the options every `cluster` command takes)."""

    library: Path
    collection: str = CLUSTER_COLLECTION
    ray: str | None = None  # None: a local Ray on this machine
    milvus: str | None = None  # None: milvus-lite under the library folder
    cpus: int | None = None  # the local Ray's CPUs
    workers: int = CLUSTER_WORKERS  # actors in the pool
    threads: int = CLUSTER_THREADS  # CPU threads per actor
    device: str = "cpu"  # execution provider per encoder actor: cpu or cuda


def index(sources: list[str], opts: ClusterOptions, encoder_spec: str | None = None, batch_size: int = 16,
          progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> IndexReport:
    """Bring the collection in step with `sources` (plus the ones remembered for it); returns what changed."""
    t0 = time.perf_counter()
    if opts.device not in PROVIDERS:
        raise ValueError(f"unknown device {opts.device!r}: choose {', '.join(PROVIDERS)}")
    folder, spec = encoder_folder(encoder_spec)
    encoder = ImageEncoder(folder, threads=1, name=Path(spec).name, spec=spec)  # its id and dim, for the plan
    with JobState(opts.library, opts.collection, writable=True) as state:
        coll = PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection, encoder.id,
                                    encoder.dim, create=True)
        state.set("encoder_spec", spec)
        roots = state.add_sources([listing.normalize(s) for s in sources])
        known = {**state.failed(), **coll.known()}
        present = listing.present(roots)
        jobs, gone, unchanged = plan_listing(known, listing.listing(roots, cancel), present)
        report = IndexReport(unchanged=unchanged, missing_roots=[r for r in roots if r not in present])
        copied: set[str] = set()
        if jobs:
            hashes = frozenset(k.hash for k in known.values() if k.hash and k.status == "ok")
            with ray_session(opts.ray, opts.cpus):
                copied = _run(jobs, hashes, coll, state, report, (str(folder), spec, encoder.id), opts, batch_size,
                              progress, cancel)
        if not report.cancelled:
            report.moved = len({known[p].hash for p in gone} & copied)  # a copy whose original went: a move
            report.removed = coll.delete(sorted(gone)) - report.moved
            state.write([], gone)
        coll.flush()
    report.seconds = time.perf_counter() - t0
    return report


def _run(jobs, known: frozenset, coll, state, report, encoder, opts, batch_size, progress, cancel) -> set[str]:
    """Encode `jobs` on the actor pool, writing each batch as it comes; returns the hashes whose vectors were copied."""
    folder, spec, encoder_id = encoder
    copied: set[str] = set()
    items = [{"path": j.path, "size": j.size, "mtime_ns": j.mtime_ns} for j in jobs]
    kwargs = {"folder": folder, "spec": spec, "encoder_id": encoder_id, "threads": opts.threads,
              "device": opts.device, "known": known}
    report.cancelled = run_on_pool(items, EncodeWorker, kwargs, opts, batch_size,
                                   lambda batch: copied.update(_write(batch, coll, state, report, encoder_id)),
                                   progress, cancel, gpus=1 if opts.device == "cuda" else 0)
    return copied


def _write(batch: dict[str, np.ndarray], coll: PhotoCollection, state: JobState, report: IndexReport,
           encoder_id: str) -> set[str]:
    """Upsert one batch's rows, record its failures; returns the content hashes whose vectors were copied."""
    status = batch["status"]
    twins = coll.by_hash([str(h) for h, s in zip(batch["hash"], status, strict=True) if s == "known"])
    rows, failed, copied = [], [], set()
    for i, path in enumerate(batch["path"]):
        path, size, mtime, digest = str(path), int(batch["size"][i]), int(batch["mtime_ns"][i]), str(batch["hash"][i])
        if status[i] == "failed":
            failed.append((path, size, mtime, str(batch["reason"][i])))
            report.failed.append((path, str(batch["reason"][i])))
        elif status[i] == "ok":
            rows.append(row(path, size, mtime, digest, batch["width"][i], batch["height"][i], encoder_id,
                            batch["vector"][i]))
        elif digest in twins:  # same content as a photo already there: its vector is reused
            t = twins[digest]
            rows.append(row(path, size, mtime, digest, t["width"], t["height"], encoder_id, t["vector"]))
            copied.add(digest)
        # else: its twin left the collection meanwhile; the photo stays pending and the next run encodes it
    coll.upsert(rows)
    state.write(failed, [r["path"] for r in rows])
    report.indexed += len(rows)
    return copied


def status(opts: ClusterOptions) -> dict:
    """The collection's size and encoder, and the job state's sources and failures."""
    with JobState(opts.library, opts.collection) as state:
        failures, sources, spec = state.failures(), state.sources(), state.get("encoder_spec")
    coll = PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection)
    return {"collection": opts.collection, "milvus": opts.milvus or str(opts.library / MILVUS_LITE),
            "library": str(opts.library), "encoder": spec, "encoder_id": coll.encoder_id, "photos": coll.count(),
            "failed": len(failures), "failures": [{"path": p, "reason": r} for p, r in failures],
            "sources": sources}
