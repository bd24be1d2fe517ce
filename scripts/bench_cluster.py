"""`edgeret cluster` on this machine: indexing throughput on Ray vs the local indexer, Milvus search vs the local index.

    python scripts/bench_cluster.py [--n 500] [--size 3000x2000] [--repeat 2] [--vectors 100000]

Part 1 indexes the same generated photos (bench_index's, cached) with the shape-faithful CLIP ViT-B/32
(shape_models.py), interleaving: the local `edgeret index` (2 threads), `edgeret cluster index` with 1 worker of
1 thread, 1 worker of 2 threads and 2 workers of 1 thread, on one local Ray of 2 CPUs started once (as a running
cluster would be) and milvus-lite. Each run reports wall time, time to the first written batch (actor start-up,
model load) and the steady rate after it. Part 2 loads `--vectors` clustered 512-d unit vectors (bench_search's)
into a milvus-lite collection through edgeret's PhotoCollection and compares single-query latency and recall@10
with the local index (USearch HNSW f16) against exact search. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_index import CACHE, make_photos  # noqa: E402
from bench_search import clustered, median_ms  # noqa: E402

from edgeret.library import Library  # noqa: E402

VARIANTS = {"local_2_threads": None, "ray_1x1": (1, 1), "ray_1x2": (1, 2), "ray_2x1": (2, 1)}


class Clock:
    """A progress callback keeping (time, done) of every report."""

    def __init__(self):
        self.t0, self.marks = time.perf_counter(), []

    def __call__(self, done: int, total: int, path: str) -> None:
        self.marks.append((time.perf_counter() - self.t0, done))

    def summary(self, n: int) -> dict:
        (t_first, n_first), (t_last, n_last) = self.marks[0], self.marks[-1]
        steady = (n_last - n_first) / (t_last - t_first) if t_last > t_first else float("nan")
        return {"seconds": round(t_last, 2), "images_per_s": round(n / t_last, 2),
                "first_batch_s": round(t_first, 2), "steady_images_per_s": round(steady, 2)}


def run_variant(name: str, photo_dir: Path, encoder: Path, batch: int, n: int, tmp: Path) -> dict:
    lib, clock = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)), Clock()  # a new milvus-lite each run
    try:
        if VARIANTS[name] is None:
            with Library(lib, writable=True) as library:
                report = library.index([photo_dir], encoder_spec=str(encoder), threads=2, batch_size=batch,
                                       progress=clock)
        else:
            from edgeret.cluster.index import ClusterOptions, index

            workers, threads = VARIANTS[name]
            opts = ClusterOptions(library=lib, workers=workers, threads=threads)
            report = index([str(photo_dir)], opts, str(encoder), batch_size=batch, progress=clock)
        assert report.indexed == n and not report.failed, report.as_dict()
        return clock.summary(n)
    finally:
        shutil.rmtree(lib, ignore_errors=True)


def milvus_write_rate(tmp: Path, dim: int = 512, rows: int = 2000, batch: int = 16) -> float:
    """Rows/s the driver upserts into milvus-lite in index-sized batches (what one driver can absorb)."""
    from edgeret.cluster.collection import PhotoCollection, row
    from edgeret.cluster.runtime import milvus_client

    coll = PhotoCollection.open(milvus_client(tmp / "write", None), "w", "enc:x", dim, create=True)
    vecs = clustered(rows, dim, seed=3)
    t0 = time.perf_counter()
    for i in range(0, rows, batch):
        coll.upsert([row(f"/p/{j}.jpg", 1, 1, f"{j:032x}", 1, 1, "enc:x", vecs[j]) for j in range(i, i + batch)])
    return rows / (time.perf_counter() - t0)


def bench_indexing(args, tmp: Path) -> dict:
    import shape_models

    size = tuple(int(x) for x in args.size.lower().split("x"))
    photo_dir = CACHE / f"photos-{size[0]}x{size[1]}-{args.n}"
    make_photos(photo_dir, args.n, size)
    encoder = CACHE / "clip-vit-b32-random"
    if not (encoder / "model.onnx").exists():
        shape_models.write_clip_b32(encoder)
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeat):  # interleaved, so the machine's drift hits every variant alike
        for name in VARIANTS:
            runs[name].append(run_variant(name, photo_dir, encoder, args.batch, args.n, tmp))
            print(name, runs[name][-1], file=sys.stderr, flush=True)
    best = {name: max(r, key=lambda x: x["steady_images_per_s"]) for name, r in runs.items()}
    return {"photos": args.n, "size": args.size, "batch": args.batch, "best": best, "runs": runs,
            "milvus_lite_upsert_rows_per_s": round(milvus_write_rate(tmp), 1)}


def bench_search(args, tmp: Path) -> dict:
    from edgeret.cluster.collection import PhotoCollection, row
    from edgeret.cluster.runtime import milvus_client
    from edgeret.vectors import ExactIndex, HnswIndex

    n, dim, k = args.vectors, 512, 10
    mat = clustered(n, dim, seed=1).astype(np.float16).astype(np.float32)  # as the catalog stores them
    queries = clustered(args.queries, dim, seed=2)
    keys = np.arange(n, dtype=np.int64)
    truth = [set(x.keys.tolist()) for x in ExactIndex(keys, mat).search(queries, k)]
    t0 = time.perf_counter()
    hnsw = HnswIndex.build(keys, mat, threads=2)
    local_build = time.perf_counter() - t0
    local_found = [set(x.keys.tolist()) for x in hnsw.search(queries, k)]

    coll = PhotoCollection.open(milvus_client(tmp / "search", None), "bench", "enc:x", dim, create=True)
    t0 = time.perf_counter()
    for i in range(0, n, 1000):
        coll.upsert([row(f"/p/{j}.jpg", 1, 1, f"{j:032x}", 1, 1, "enc:x", mat[j]) for j in range(i, min(n, i + 1000))])
    coll.flush()
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    coll.search(queries[:1], k)  # the first search waits for the index
    first_search_s = time.perf_counter() - t0
    milvus_found = [{int(h["path"][3:-4]) for h in coll.search(q[None], k)[0]} for q in queries]
    recall = lambda found: float(np.mean([len(f & t) / k for f, t in zip(found, truth, strict=True)]))  # noqa: E731
    return {
        "vectors": n, "dim": dim, "queries": args.queries,
        "local_hnsw": {"build_s": round(local_build, 2), "recall_at_10": round(recall(local_found), 4),
                       "median_ms": round(median_ms(lambda q: hnsw.search(q, k), queries), 3)},
        "milvus_lite": {"insert_s": round(insert_s, 1), "first_search_s": round(first_search_s, 2),
                        "recall_at_10": round(recall(milvus_found), 4),
                        "median_ms": round(median_ms(lambda q: coll.search(q[None], k), queries), 3)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", default="3000x2000")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--vectors", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--skip", choices=["index", "search"], help="leave one part out")
    args = ap.parse_args()
    from edgeret.cluster.runtime import ray_session

    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
              "load_avg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if args.skip != "index":
            t0 = time.perf_counter()
            with ray_session(None, 2):
                report["ray_start_s"] = round(time.perf_counter() - t0, 2)
                report["indexing"] = bench_indexing(args, Path(tmp))
        if args.skip != "search":
            report["search"] = bench_search(args, Path(tmp))
    report["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
