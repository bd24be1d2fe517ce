"""`edgeret cluster` on this machine: indexing throughput on Ray vs the local indexer, Milvus search vs the local index.

    python scripts/bench_cluster.py [--n 500] [--size 3000x2000] [--repeat 2] [--vectors 100000] [--queries 200]
                                    [--skip index|search]

Part 1 indexes the same generated photos (bench_index's, cached) with the shape-faithful CLIP ViT-B/32
(shape_models.py), interleaving: the local `edgeret index` (2 threads), `edgeret cluster index` with 1 worker of
1 thread, 1 worker of 2 threads and 2 workers of 1 thread, on one local Ray of 2 CPUs started once (as a running
cluster would be) and milvus-lite. Each run reports wall time, time to the first written batch (actor start-up,
model load) and the steady rate after it. Part 2 loads `--vectors` clustered 512-d unit vectors (bench_search's)
(a Gaussian mixture around 2,000 centres, so neighbours are real) into a milvus-lite collection through edgeret's
PhotoCollection and into the local index (edgeret.vectors.HnswIndex, USearch HNSW f16), and runs `--queries`
single-vector queries on each: recall@10 against an exact numpy scan (the ground truth, whose latency is the
reference measured in the same run), p50/p95 latency, insert/build time. Progress and the search table go to
stderr; stdout is one JSON report.
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
from bench_search import clustered  # noqa: E402

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


def timed(search, queries: np.ndarray) -> tuple[list[set[int]], np.ndarray]:
    """Each query's top-k keys and its latency in ms, one query at a time (as an interactive search asks)."""
    found, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        keys = search(q)
        ms.append(1000 * (time.perf_counter() - t0))
        found.append(keys)
    return found, np.array(ms)


def summary(found: list[set[int]], ms: np.ndarray, truth: list[set[int]], k: int) -> dict:
    recall = float(np.mean([len(f & t) / k for f, t in zip(found, truth, strict=True)]))
    return {"recall_at_10": round(recall, 4), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def bench_search(args, tmp: Path) -> dict:
    """Milvus (milvus-lite, through PhotoCollection) and the local USearch index against exact numpy search."""
    from edgeret.cluster.collection import PhotoCollection, row
    from edgeret.cluster.runtime import milvus_client
    from edgeret.vectors import HnswIndex

    n, dim, k = args.vectors, 512, 10
    mat = clustered(n, dim, seed=1).astype(np.float16).astype(np.float32)  # as the catalog stores them
    queries = clustered(args.queries, dim, seed=2)  # the database's centres, their own noise: true neighbours exist

    def exact(q: np.ndarray) -> set[int]:  # the ground truth, and the reference latency of a brute-force scan
        return set(np.argpartition(-(mat @ q), k)[:k].tolist())

    truth, exact_ms = timed(exact, queries)
    out: dict = {"vectors": n, "dim": dim, "queries": args.queries, "k": k,
                 "exact_numpy": {**summary(truth, exact_ms, truth, k), "insert_s": 0.0}}
    print("exact", out["exact_numpy"], file=sys.stderr, flush=True)

    keys = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    hnsw = HnswIndex.build(keys, mat, threads=2)
    build_s = time.perf_counter() - t0
    found, ms = timed(lambda q: set(hnsw.search(q, k)[0].keys.tolist()), queries)
    out["local_usearch"] = {**summary(found, ms, truth, k), "insert_s": round(build_s, 1)}
    print("local", out["local_usearch"], file=sys.stderr, flush=True)

    coll = PhotoCollection.open(milvus_client(tmp / "search", None), "bench", "enc:x", dim, create=True)
    t0 = time.perf_counter()
    for i in range(0, n, args.insert_batch):
        coll.upsert([row(f"/p/{j}.jpg", 1, 1, f"{j:032x}", 1, 1, "enc:x", mat[j])
                     for j in range(i, min(n, i + args.insert_batch))])
    coll.flush()
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    coll.search(queries[:1], k)  # the first search waits for the index of the last segments
    first_search_s = time.perf_counter() - t0
    found, ms = timed(lambda q: {int(h["path"][3:-4]) for h in coll.search(q[None], k)[0]}, queries)
    out["milvus_lite"] = {**summary(found, ms, truth, k), "insert_s": round(insert_s, 1),
                          "insert_rows_per_s": round(n / insert_s), "first_search_s": round(first_search_s, 2)}
    print("milvus", out["milvus_lite"], file=sys.stderr, flush=True)
    return out


def search_table(s: dict) -> str:
    """The search part as a Markdown table (what docs/cluster.md shows)."""
    lines = [f"{s['vectors']:,} clustered {s['dim']}-d unit vectors, {s['queries']} queries, k = {s['k']}",
             "| index | recall@10 vs exact | p50 latency | p95 latency | insert / build |", "|---|---|---|---|---|"]
    names = {"exact_numpy": "exact numpy scan (ground truth, reference)", "local_usearch": "local USearch HNSW f16",
             "milvus_lite": "milvus-lite HNSW via PhotoCollection"}
    for key, label in names.items():
        r = s[key]
        lines.append(f"| {label} | {r['recall_at_10']:.4f} | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms | "
                     f"{r['insert_s']:.1f} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", default="3000x2000")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--vectors", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--insert-batch", type=int, default=1000, help="rows per Milvus upsert in the search part")
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
            print(search_table(report["search"]), file=sys.stderr)
    report["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
