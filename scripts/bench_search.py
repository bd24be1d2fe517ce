"""First-stage search: exact numpy vs USearch HNSW (f16) on clustered random unit vectors, 512-d.

    python scripts/bench_search.py [--sizes 10000,100000,1000000] [--queries 200] [--threads 2]

For each size: single-query latency (median) and recall@10 of each, HNSW build time, its size on disk and in memory,
and the time to load the vectors from a real catalog (the cost the exact path pays at open). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeret.catalog import Catalog  # noqa: E402
from edgeret.vectors import ExactIndex, HnswIndex  # noqa: E402


def clustered(n: int, dim: int, seed: int, centre_seed: int = 0) -> np.ndarray:
    """Unit vectors around 2,000 centres: real image embeddings cluster, uniform noise does not.

    Queries use the database's centres (`centre_seed`) with their own noise (`seed`), as a photo of an object that
    the library holds other photos of: query-to-neighbour cosines around 0.7, not the ~0.15 of unrelated directions.
    """
    centres = np.random.default_rng(centre_seed).standard_normal((2000, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def median_ms(fn, queries) -> float:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def recall_at_10(found, truth) -> float:
    return float(np.mean([len(set(a.keys[:10]) & set(b.keys[:10])) / 10 for a, b in zip(found, truth, strict=True)]))


def catalog_load_s(keys: np.ndarray, mat: np.ndarray) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalog(Path(tmp) / "c.sqlite")
        rows = [(f"/p/{k}.jpg", 1, 1, f"h{k}", 1, 1, v) for k, v in zip(keys, mat, strict=True)]
        for i in range(0, len(rows), 10_000):
            cat.write_batch(rows[i : i + 10_000], [])
        t0 = time.perf_counter()
        cat.vectors()
        out = time.perf_counter() - t0
        cat.close()
        return out


def bench_size(n: int, dim: int, nq: int, threads: int, with_catalog: bool) -> dict:
    mat = clustered(n, dim, seed=1)
    keys = np.arange(1, n + 1, dtype=np.int64)
    queries = clustered(nq, dim, seed=2)
    exact = ExactIndex(keys, mat)
    truth = exact.search(queries, 10)
    t0 = time.perf_counter()
    hnsw = HnswIndex.build(keys, mat, threads=threads)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.usearch"
        hnsw.save_atomic(path)
        disk = path.stat().st_size
        t0 = time.perf_counter()
        HnswIndex.load(path)
        restore_s = time.perf_counter() - t0
    out = {
        "n": n,
        "exact_ms": round(median_ms(lambda q: exact.search(q, 10), queries), 3),
        "exact_batch_ms_per_query": round(1000 * _timed(lambda: exact.search(queries, 10)) / nq, 3),
        "exact_memory_mb": round(mat.nbytes / 2**20, 1),
        "hnsw_ms": round(median_ms(lambda q: hnsw.search(q, 10), queries), 3),
        "hnsw_recall_at_10": round(recall_at_10(hnsw.search(queries, 10), truth), 4),
        "hnsw_build_s": round(build_s, 2),
        "hnsw_restore_s": round(restore_s, 3),
        "hnsw_disk_mb": round(disk / 2**20, 1),
        "hnsw_memory_mb": round(hnsw.index.memory_usage / 2**20, 1),
    }
    if with_catalog:
        out["exact_open_from_catalog_s"] = round(catalog_load_s(keys, mat), 3)
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--catalog-up-to", type=int, default=100_000, help="measure catalog load time up to this size")
    args = ap.parse_args()
    results = [
        bench_size(n, args.dim, args.queries, args.threads, n <= args.catalog_up_to)
        for n in (int(s) for s in args.sizes.split(","))
    ]
    print(json.dumps({"dim": args.dim, "threads": args.threads, "usearch_dtype": "f16", "results": results}))


if __name__ == "__main__":
    main()
