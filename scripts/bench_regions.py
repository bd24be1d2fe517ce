"""What regional indexing costs: index time per photo, and index size, RAM and query latency at scale.

    python scripts/bench_regions.py index [--photos DIR] [--encoder DIR] [--settings off,grid,dense,query]
                                          [--keep PREFIX] [--n 100] [--size 3000x2000] [--threads 2]
    python scripts/bench_regions.py search [--photos 10000,100000] [--dims 512,1280] [--settings off,grid,dense,query]
                                           [--per-photo grid=7.3,dense=19.8] [--budget-gb 2] [--json OUT]

`index` times `Library.index` for each setting on the same photos in one run, with `off` run first and last (the
reference: this machine drifts); default photos are generated camera-sized JPEGs (scripts/bench_index.py) and the
default encoder the shape-faithful CLIP ViT-B/32 (scripts/shape_models.py). `--keep PREFIX` keeps each library as
PREFIX-SETTING (e.g. to evaluate the devset libraries afterwards).

`search` builds real libraries of synthetic vectors (clustered random unit vectors, scripts/bench_search.py; each
photo gets the setting's vectors per photo, queries the setting's vectors per query) through the real path: catalog
rows, `Library.refresh_index` (exact below EXACT_BELOW vectors, else USearch HNSW, saved), then in a fresh process
the RSS delta of opening the library and loading its index, and the latency (one BLAS thread) of
`Library.search_sets` against an exact numpy matrix product over the same vectors (the reference, same process).
Cells whose float32 matrix would exceed --budget-gb are skipped (said in the table). Prints a table; `--json OUT`
writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeret import regions  # noqa: E402
from edgeret.library import Library  # noqa: E402
from edgeret.settings import K  # noqa: E402

# the devset's measured vectors per photo (mnv2-gem libraries, docs/evaluation.md); a 3:2 query photo gets 1 + 8
# crops with grid and 1 + 8 + 15 with dense
PER_PHOTO = {"off": 1.0, "grid": 7.3, "dense": 19.8, "query": 1.0}
PER_QUERY = {"off": 1, "grid": 9, "dense": 24, "query": 9}


# index ---------------------------------------------------------------------------------------------------------
def bench_index(args) -> dict:
    from edgeret.encoders import ImageEncoder

    if args.photos is None:
        import bench_index as bi

        size = tuple(int(x) for x in args.size.lower().split("x"))
        args.photos = bi.CACHE / f"photos-{size[0]}x{size[1]}-{args.n}"
        bi.make_photos(args.photos, args.n, size)
    if args.encoder is None:
        import bench_index as bi
        import shape_models

        args.encoder = bi.CACHE / "clip-vit-b32-random"
        if not (args.encoder / "model.onnx").exists():
            shape_models.write_clip_b32(args.encoder)
    encoder = ImageEncoder(args.encoder, threads=args.threads)
    from PIL import Image

    encoder.encode_images([Image.new("RGB", (256, 256))] * 2)  # warm-up
    settings = args.settings.split(",")
    order = ["off", *[s for s in settings if s != "off"], "off"]  # the reference first and last
    runs: dict[str, list[dict]] = {}
    for name in order:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(f"{args.keep}-{name}") if args.keep else Path(tmp) / "lib"
            if path.exists() and args.keep:
                shutil.rmtree(path)
            with Library(path, writable=True) as lib:
                t0 = time.perf_counter()
                report = lib.index([args.photos], encoder=encoder, regions=name, threads=args.threads)
                seconds = time.perf_counter() - t0
                st = lib.status()
            assert report.indexed and not report.failed, report.as_dict()
            runs.setdefault(name, []).append({
                "photos": report.indexed, "seconds": round(seconds, 2),
                "ms_per_photo": round(1000 * seconds / report.indexed, 1),
                "vectors_per_photo": st["vectors_per_photo"], "bytes_on_disk": st["index"]["bytes_on_disk"],
            })
            print(f"{name:>6}: {runs[name][-1]}", file=sys.stderr, flush=True)
    ref = float(np.mean([r["ms_per_photo"] for r in runs["off"]]))
    rows = {}
    for name, rs in runs.items():
        ms = float(np.mean([r["ms_per_photo"] for r in rs]))
        rows[name] = {**rs[-1], "ms_per_photo": round(ms, 1), "x_off": round(ms / ref, 2)}
    return {"encoder": str(args.encoder), "photos_dir": str(args.photos), "threads": args.threads,
            "off_runs_ms_per_photo": [r["ms_per_photo"] for r in runs["off"]], "settings": rows,
            "load_average": os.getloadavg()}


def print_index(rep: dict) -> None:
    print(f"index time, {rep['encoder']} on {rep['photos_dir']} ({rep['threads']} threads; off runs "
          f"{rep['off_runs_ms_per_photo']} ms/photo, load {rep['load_average'][0]:.1f})")
    print(f"{'setting':<8}{'ms/photo':>10}{'× off':>8}{'vectors/photo':>15}{'disk MB':>10}")
    for name, r in rep["settings"].items():
        print(f"{name:<8}{r['ms_per_photo']:>10.1f}{r['x_off']:>8.2f}{r['vectors_per_photo']:>15.2f}"
              f"{r['bytes_on_disk'] / 1e6:>10.2f}")


# search --------------------------------------------------------------------------------------------------------
def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    from bench_search import clustered

    return clustered(n, dim, seed)


def _counts(photos: int, per_photo: float, seed: int) -> np.ndarray:
    """Vectors of each photo (its own included): whole numbers averaging `per_photo`, as real photos vary."""
    base = int(per_photo)
    extra = np.random.default_rng(seed).random(photos) < per_photo - base
    return (base + extra).astype(int)


def build_library(path: Path, photos: int, dim: int, per_photo: float, setting: str) -> dict:
    """A library of `photos` synthetic photos written through the catalog, then its index built and saved."""
    counts = _counts(photos, per_photo, seed=dim)
    t0 = time.perf_counter()
    with Library(path, writable=True) as lib:
        lib.catalog.set_meta("regions", setting)
        lib.catalog.set_meta("regions_id", regions.resolve(setting).id)
        start = 0
        for chunk in range(0, photos, 2000):
            n = counts[chunk:chunk + 2000]
            vecs = _vectors(int(n.sum()), dim, seed=1 + chunk)
            rows, at = [], 0
            for i, c in enumerate(n.tolist()):
                key = chunk + i
                rows.append((f"/synthetic/{key:07d}.jpg", 1, 1, f"h{key}", 1, 1, vecs[at],
                             vecs[at + 1:at + c] if c > 1 else None))
                at += c
            lib.catalog.write_batch(rows, [])
            start += len(rows)
        written = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = lib.refresh_index()
        built = time.perf_counter() - t0
        kind, size = index.kind, len(index)
    return {"vectors": int(counts.sum()), "index_kind": kind, "index_size": size, "write_s": round(written, 1),
            "build_s": round(built, 1), "disk_bytes": sum(f.stat().st_size for f in path.iterdir() if f.is_file())}


_PROBE = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from edgeret.library import Library

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

path, per_query, dim, k, n_q = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
sys.path.insert(0, sys.argv[7])
from bench_search import clustered, median_ms
queries = [clustered(per_query, dim, seed=10_000 + i) for i in range(n_q)]
before = rss()
lib = Library(path)
index = lib.refresh_index()
loaded = rss() - before

def timed(fn):
    fn(queries[0])  # warm-up
    return median_ms(fn, queries)

ours = [[h.key for h in lib.search_sets([q], k=k)[0]] for q in queries]
ms = timed(lambda q: lib.search_sets([q], k=k))
from edgeret.regions import photo_of
keys, mat = lib.catalog.index_vectors()
owners = photo_of(keys)
order = np.argsort(owners, kind="stable")
owners, mat = owners[order], np.ascontiguousarray(mat[order])
starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])

def reference(q):
    best = np.maximum.reduceat((q @ mat.T).max(axis=0), starts)
    top = np.argpartition(-best, k - 1)[:k]
    return owners[starts[top[np.argsort(-best[top])]]]

truth = [reference(q).tolist() for q in queries]
ref_ms = timed(reference)
recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, truth)]))
print(json.dumps({"rss_delta_bytes": loaded, "index_kind": index.kind, "query_ms": ms, "reference_ms": ref_ms,
                  "recall_at_k": recall}))
"""


def probe(path: Path, per_query: int, dim: int, k: int, queries: int) -> dict:
    """Open the library in a fresh process: RSS delta of the open + index load, then query latencies."""
    root, scripts = Path(__file__).resolve().parents[1], Path(__file__).resolve().parent
    # one BLAS thread: on a loaded machine a multi-threaded product waits for cores, and ms-scale figures scatter
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(root), str(path), str(per_query), str(dim), str(k),
                          str(queries), str(scripts)], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_search(args) -> dict:
    per_photo = dict(PER_PHOTO)
    for item in filter(None, (args.per_photo or "").split(",")):
        name, value = item.split("=")
        per_photo[name] = float(value)
    cells = []
    for photos in (int(x) for x in args.photos.split(",")):
        for dim in (int(x) for x in args.dims.split(",")):
            for setting in args.settings.split(","):
                vectors = photos * per_photo[setting]
                cell = {"photos": photos, "dim": dim, "setting": setting, "vectors_per_photo": per_photo[setting],
                        "vectors_per_query": PER_QUERY[setting]}
                if vectors * dim * 4 > args.budget_gb * 1e9:
                    cells.append({**cell, "skipped": f"float32 matrix over {args.budget_gb} GB"})
                    print(f"skip {cell}", file=sys.stderr, flush=True)
                    continue
                with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
                    built = build_library(Path(tmp) / "lib", photos, dim, per_photo[setting], setting)
                    probed = probe(Path(tmp) / "lib", PER_QUERY[setting], dim, args.k, args.queries)
                cells.append({**cell, **built, **probed})
                print(cells[-1], file=sys.stderr, flush=True)
    return {"k": args.k, "queries": args.queries, "cells": cells, "load_average": os.getloadavg()}


def print_search(rep: dict) -> None:
    print(f"first-stage search, synthetic libraries (k={rep['k']}, median of {rep['queries']} queries; reference: "
          "exact numpy matmul, same vectors, same process)")
    head = ["photos", "dim", "setting", "vec/photo", "vectors", "index", "disk MB", "RAM MB", "query ms", "ref ms",
            "recall", "build s"]
    print("".join(f"{h:>10}" for h in head))
    for c in rep["cells"]:
        if "skipped" in c:
            print(f"{c['photos']:>10}{c['dim']:>10}{c['setting']:>10}{c['vectors_per_photo']:>10}  skipped: "
                  f"{c['skipped']}")
            continue
        vals = [c["photos"], c["dim"], c["setting"], c["vectors_per_photo"], c["vectors"], c["index_kind"],
                f"{c['disk_bytes'] / 1e6:.0f}", f"{c['rss_delta_bytes'] / 1e6:.0f}", f"{c['query_ms']:.2f}",
                f"{c['reference_ms']:.2f}", f"{c['recall_at_k']:.3f}", c["build_s"]]
        print("".join(f"{v:>10}" for v in vals))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    ix = sub.add_parser("index", help="index time per photo of each setting, same photos, one run")
    ix.add_argument("--photos", type=Path, help="photo folder (default: generated camera-sized JPEGs)")
    ix.add_argument("--n", type=int, default=100, help="how many photos to generate (without --photos)")
    ix.add_argument("--size", default="3000x2000", help="generated photo size (without --photos)")
    ix.add_argument("--encoder", type=Path, help="encoder folder (default: shape-faithful CLIP ViT-B/32)")
    ix.add_argument("--settings", default="off,grid,dense,query")
    ix.add_argument("--keep", help="keep each library as KEEP-SETTING")
    ix.add_argument("--threads", type=int, default=2)
    se = sub.add_parser("search", help="index size, RAM and latency on synthetic libraries")
    se.add_argument("--photos", default="10000,100000")
    se.add_argument("--dims", default="512,1280")
    se.add_argument("--settings", default="off,grid,dense,query")
    se.add_argument("--per-photo", help="vectors per photo, e.g. grid=7.3,dense=19.8 (default: the devset's)")
    se.add_argument("--k", type=int, default=K)
    se.add_argument("--queries", type=int, default=50)
    se.add_argument("--budget-gb", type=float, default=2.0, help="skip cells whose float32 matrix is larger")
    se.add_argument("--tmp", help="where the synthetic libraries are built (default: the system's temp dir)")
    for p in (ix, se):
        p.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    rep = bench_index(args) if args.what == "index" else bench_search(args)
    (print_index if args.what == "index" else print_search)(rep)
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
