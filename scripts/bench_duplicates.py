"""Duplicate-finding time on synthetic vectors, and watch latency on a temporary folder.

    python scripts/bench_duplicates.py [--n 100000] [--dim 512] [--threads 2] [--exact] [--watch-trials 10]

Duplicates: RANDOM CLUSTERED VECTORS, not photos: n unit vectors, 10% of them in near-copy clusters of 2-5 (noise
giving cosines of about 0.96-0.99 to their centre), the rest random. Timed like `edgeret duplicates` on a library
above the exact-search size: USearch HNSW build (f16, as the library stores it), k-NN of every vector, union-find.
--exact also times the blocked exact k-NN that smaller libraries use.

Watch latency: a library of 20 generated photos with the tiny test encoder (scripts/tiny_onnx.py), a Watcher with
its defaults; time from a new photo being written to it being returned by search, then a burst copy of 500 files.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# onnxruntime must be loaded before usearch: the other order segfaults (onnxruntime 1.31.1, usearch 2.26.6/numkong)
import edgeret.encoders  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def clustered(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[list[int]]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    truth, i = [], 0
    while i < n // 10:
        size = int(rng.integers(2, 6))
        members = list(range(i, min(i + size, n // 10)))
        noise = rng.uniform(0.1, 0.2)  # per-coordinate noise relative to a unit-variance centre: cos ~0.96-0.99
        x[members] = x[i] + noise * rng.standard_normal((len(members), dim)).astype(np.float32)
        truth.append(members)
        i += size
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [t for t in truth if len(t) > 1]


def bench_duplicates(n: int, dim: int, threads: int, k: int, threshold: float, exact: bool) -> None:
    from edgeret.duplicates import group_rows, knn
    from edgeret.vectors import HnswIndex

    x, truth = clustered(n, dim)
    keys = np.arange(1, n + 1, dtype=np.int64)
    print(f"duplicates on {n:,} RANDOM CLUSTERED {dim}-d vectors (synthetic, not photos), "
          f"{len(truth):,} true groups, k={k}, threshold={threshold}, threads={threads}")
    t0 = time.perf_counter()
    index = HnswIndex.build(keys, x, threads=threads).index
    t1 = time.perf_counter()
    groups = group_rows(x, threshold, k, index=index, keys=keys)
    t2 = time.perf_counter()
    found = {tuple(sorted(g)) for g in groups}
    exact_hits = sum(tuple(t) in found for t in truth)
    print(f"  USearch HNSW f16 build   {t1 - t0:7.1f} s")
    print(f"  k-NN + union-find        {t2 - t1:7.1f} s  ({n / (t2 - t1):,.0f} vectors/s)")
    print(f"  total                    {t2 - t0:7.1f} s  (a library that keeps its HNSW file pays only the k-NN)")
    print(f"  groups found {len(groups):,}; true groups recovered exactly {exact_hits:,}/{len(truth):,}")
    if exact:
        t3 = time.perf_counter()
        knn(x, k)
        print(f"  exact blocked k-NN       {time.perf_counter() - t3:7.1f} s  (what libraries below 50k use)")


def bench_watch(trials: int, burst: int) -> None:
    from edgeret.library import Library
    from edgeret.testing import tiny_onnx
    from edgeret.testing.photos import make_photo
    from edgeret.watch import Watcher

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        enc = tiny_onnx.write(tmp / "enc", "embedding")
        photos = tmp / "photos"
        for i in range(20):
            make_photo(photos / f"p{i:02d}.jpg", seed=i)
        with Library(tmp / "lib", writable=True) as lib:
            lib.index([photos], encoder_spec=str(enc), threads=1)
        reader = Library(tmp / "lib")

        def visible(path: Path) -> bool:
            key = reader.catalog.id_for_path(str(path))
            if key is None:
                return False
            return reader.search_vectors(reader.vector_of(key), 1)[0][0].key == key

        for run, quiet in enumerate((1.0, 0.3)):
            lat = []
            with Watcher(tmp / "lib", quiet=quiet, catch_up=False, threads=1) as w:
                for t in range(trials):
                    w.wait_idle(30)
                    target = photos / f"new-{quiet}-{t}.jpg"
                    t0 = time.perf_counter()
                    make_photo(target, seed=10_000 + 1000 * run + t)  # new content, not a copy
                    while not visible(target):
                        time.sleep(0.01)
                    lat.append(time.perf_counter() - t0)
            print(f"watch latency (file written -> returned by search), quiet={quiet}s, tiny encoder, {trials} trials: "
                  f"median {statistics.median(lat):.2f} s, max {max(lat):.2f} s")
        src = tmp / "incoming"
        for i in range(burst):
            make_photo(src / f"b{i:04d}.jpg", seed=20_000 + i, size=(160, 120))
        batches = []
        with Watcher(tmp / "lib", catch_up=False, threads=1, on_batch=batches.append) as w:
            t0 = time.perf_counter()
            shutil.copytree(src, photos / "burst")
            last = photos / "burst" / f"b{burst - 1:04d}.jpg"
            while not visible(last):
                time.sleep(0.05)
            w.wait_idle(60)
            t = time.perf_counter() - t0
        print(f"burst copy of {burst} files: {sum(b.events for b in batches)} events applied in {len(batches)} index "
              f"run(s), all searchable {t:.1f} s after the copy started")
        reader.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--exact", action="store_true", help="also time the exact blocked k-NN")
    ap.add_argument("--watch-trials", type=int, default=10, help="0 skips the watch benchmark")
    ap.add_argument("--burst", type=int, default=500)
    args = ap.parse_args()
    if args.n:
        bench_duplicates(args.n, args.dim, args.threads, args.k, args.threshold, args.exact)
    if args.watch_trials:
        bench_watch(args.watch_trials, args.burst)
