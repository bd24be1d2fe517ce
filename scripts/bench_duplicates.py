"""Duplicates: the labelled same-picture benchmark on the devset, duplicate-finding time, and watch latency.

    python scripts/bench_duplicates.py [--labelled] [--n 100000] [--dim 512] [--threads 2] [--watch-trials 10]

Labelled (--labelled, needs ../shared): every devset photo (given an EXIF block, so stripping it changes bytes, not
pixels) and its versions (edgeret.testing.photos.VARIANTS: 50 % and 25 % resize, JPEG q30, PNG, WebP, HEIC, a 5 %
crop of each side, stored rotated with an EXIF orientation, metadata stripped) are indexed into one library per
encoder (mnv2-gem; the shape-faithful random-weight ViT-B/32 of scripts/shape_models.py), then `find_duplicates`
runs as `edgeret duplicates` does. Reported per variant kind: recall (the version lands in its original's
same-picture group) and precision (its same-picture pairs that are truly one picture); and how many pairs of
different devset photos are called the same picture, both within the devset's groups (different shots of one
building or object, or heavy edits: crop-zoom, re-lit, occluded) and over all pairs. Today's rule (cosine >= the
threshold) is scored on the same k-NN graph beside it.

Time: RANDOM CLUSTERED VECTORS, not photos: n unit vectors, 10 % of them in near-copy clusters of 2-5 (noise giving
cosines of about 0.96-0.99 to their centre), with synthetic picture signatures (the clusters' hashes a few bits apart,
thumbnails with noise; the rest random). One USearch HNSW build (f16, as the library stores it), then today's
grouping (k-NN + union-find by cosine) and the new one (k-NN + pHash buckets + thumbnail checks + both
union-finds) on it, in the same run.

Watch latency: a library of 20 generated photos with the tiny test encoder (scripts/tiny_onnx.py), a Watcher with
its defaults; time from a new photo being written to it being returned by search, then a burst copy of 500 files.
"""

from __future__ import annotations

import argparse
import itertools
import json
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
sys.path.insert(0, str(Path(__file__).resolve().parent))


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


def synthetic_pictures(n: int, truth: list[list[int]], seed: int = 1):
    """(pHashes, thumbnail matrix) for n photos: each true cluster's members a few bits and a little noise apart."""
    from edgeret.picture import COLOUR_SIDE, SIDE, THUMB_BYTES

    rng = np.random.default_rng(seed)
    hashes = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64)
    bits = hashes.view(np.uint64)
    small = rng.uniform(0, 255, (n, 4, 4)).astype(np.float32)  # smooth random thumbnails: 4×4 noise, upsampled
    thumbs = np.repeat(np.repeat(small, SIDE // 4, 1), SIDE // 4, 2).reshape(n, -1)
    for members in truth:
        for m in members[1:]:
            flips = rng.choice(64, int(rng.integers(0, 7)), replace=False).astype(np.uint64)
            bits[m] = bits[members[0]] ^ np.bitwise_or.reduce(np.uint64(1) << flips, initial=np.uint64(0))
            thumbs[m] = thumbs[members[0]] + rng.normal(0, 4, SIDE * SIDE)
    colour = rng.uniform(0, 255, (n, 3))
    for members in truth:
        colour[members] = colour[members[0]]
    colour = np.tile(colour, COLOUR_SIDE * COLOUR_SIDE)  # flat colour thumbnails
    raw = np.concatenate([np.clip(thumbs, 0, 255), colour], axis=1).astype(np.uint8)
    assert raw.shape[1] == THUMB_BYTES
    return hashes, raw


def bench_time(n: int, dim: int, threads: int, k: int, threshold: float) -> None:
    from edgeret.duplicates import UnionFind, candidate_pairs, classify_pairs, knn
    from edgeret.picture import Picture
    from edgeret.vectors import HnswIndex

    x, truth = clustered(n, dim)
    hashes, thumbs = synthetic_pictures(n, truth)
    keys = np.arange(1, n + 1, dtype=np.int64)
    print(f"duplicates on {n:,} RANDOM CLUSTERED {dim}-d vectors with synthetic picture signatures (not photos), "
          f"{len(truth):,} true groups, k={k}, threshold={threshold}, threads={threads}")
    t0 = time.perf_counter()
    index = HnswIndex.build(keys, x, threads=threads).index
    build = time.perf_counter() - t0

    t1 = time.perf_counter()  # today's: k-NN, cosine pairs, union-find (group_rows)
    nbr, sim = knn(x, k, index, keys)
    a, b, _ = candidate_pairs(nbr, sim, threshold)
    uf = UnionFind(n)
    for p, q in zip(a.tolist(), b.tolist(), strict=True):
        uf.union(p, q)
    old_groups = uf.components()
    old = time.perf_counter() - t1

    t2 = time.perf_counter()  # the new: k-NN, pHash buckets + k-NN candidates judged on thumbnails, both kinds
    nbr, sim = knn(x, k, index, keys)
    pairs = classify_pairs(nbr, sim, hashes, lambda rows: {r: Picture(int(hashes[r]), thumbs[r].tobytes())
                                                           for r in rows}, threshold)
    copies = UnionFind(n)
    for p, q in pairs.same:
        copies.union(p, q)
    new_groups = copies.components()
    shots = UnionFind(n)
    for p, q, _ in pairs.similar:
        shots.union(copies.find(p), copies.find(q))
    similar_groups = [g for g in shots.components() if len({copies.find(r) for r in g}) > 1]
    new = time.perf_counter() - t2
    found = {tuple(sorted(g)) for g in new_groups}
    print(f"  USearch HNSW f16 build                 {build:7.1f} s  (shared by both; a library keeping its HNSW "
          f"file skips it)")
    print(f"  today's  k-NN + cosine union-find      {old:7.1f} s   total {build + old:7.1f} s   "
          f"{len(old_groups):,} groups")
    print(f"  new      k-NN + pHash + thumbnails     {new:7.1f} s   total {build + new:7.1f} s   "
          f"{len(new_groups):,} same-picture groups ({sum(tuple(t) in found for t in truth):,}/{len(truth):,} "
          f"true groups exactly), {len(similar_groups):,} similar; new/today total "
          f"{(build + new) / (build + old):.2f}")


# the labelled benchmark ---------------------------------------------------------------------------------------
def build_variants(devset: Path, out: Path, limit: int | None) -> tuple[list[dict], dict[str, dict]]:
    """Write the originals (with EXIF) and their versions; returns (gt images, path -> {source, kind})."""
    from edgeret.testing.photos import VARIANTS, make_variant, with_exif

    gt = json.loads((devset / "gt.json").read_text())["images"][:limit]
    labels: dict[str, dict] = {}
    for i, im in enumerate(gt):
        src = out / "original" / Path(im["file"]).name
        src.parent.mkdir(parents=True, exist_ok=True)
        if not src.is_file():  # a --keep folder from an earlier run is reused as it is
            src.write_bytes(with_exif((devset / im["file"]).read_bytes()))
        labels[str(src)] = {"source": i, "kind": "original"}
        for kind in VARIANTS:
            done = sorted((out / kind).glob(Path(im["file"]).stem + ".*"))
            path = done[0] if done else make_variant(src, kind, out / kind / Path(im["file"]).stem, seed=i)
            labels[str(path)] = {"source": i, "kind": kind}
    return gt, labels


def score(groups, labels: dict[str, dict], gt: list[dict], nbr, sim, keys, key_path, threshold: float) -> dict:
    """Recall/precision of same-picture per variant kind, wrong different-photo pairs; today's rule beside it."""
    from edgeret.duplicates import SAME_PICTURE, UnionFind, candidate_pairs
    from edgeret.testing.photos import VARIANTS

    def judge_groups(group_sets):
        group_of = {p: n for n, g in enumerate(group_sets) for p in g}
        rec = {}
        for kind in VARIANTS:
            paths = [p for p, lab in labels.items() if lab["kind"] == kind]
            orig = {lab["source"]: p for p, lab in labels.items() if lab["kind"] == "original"}
            hit = sum(1 for p in paths if p in group_of and group_of.get(orig[labels[p]["source"]]) == group_of[p])
            true_pairs = all_pairs = 0
            for p in paths:
                if p not in group_of:
                    continue
                mates = [q for q in group_sets[group_of[p]] if q != p]
                all_pairs += len(mates)
                true_pairs += sum(labels[q]["source"] == labels[p]["source"] for q in mates)
            rec[kind] = {"recall": round(hit / len(paths), 3),
                         "precision": round(true_pairs / all_pairs, 3) if all_pairs else None,
                         "n": len(paths)}
        wrong_within, wrong_all, joined = 0, 0, set()
        for g in group_sets:
            srcs = sorted({labels[p]["source"] for p in g})
            joined.update(itertools.combinations(srcs, 2))
        for s, t in joined:
            wrong_all += 1
            if gt[s]["group"] is not None and gt[s]["group"] == gt[t]["group"]:
                wrong_within += 1
        return rec, wrong_within, wrong_all

    same_sets = [{m.path for m in g.members} for g in groups if g.kind in ("identical", SAME_PICTURE)]
    new_rec, new_within, new_all = judge_groups(same_sets)
    a, b, _ = candidate_pairs(nbr, sim, threshold)  # today's rule on the same graph
    uf = UnionFind(len(keys))
    for p, q in zip(a.tolist(), b.tolist(), strict=True):
        uf.union(p, q)
    old_sets = [{key_path[int(keys[r])] for r in g} for g in uf.components()]
    old_rec, old_within, old_all = judge_groups(old_sets)
    n = len(gt)
    within = sum(1 for s, t in itertools.combinations(range(n), 2)
                 if gt[s]["group"] is not None and gt[s]["group"] == gt[t]["group"])
    similar = [g for g in groups if g.kind == "similar"]
    return {"new": new_rec, "old": old_rec, "wrong_within": (new_within, old_within), "wrong_all": (new_all, old_all),
            "pairs_within": within, "pairs_all": n * (n - 1) // 2, "similar_groups": len(similar)}


def bench_labelled(encoders: dict[str, str], threads: int, k: int, threshold: float, limit: int | None,
                   keep: Path | None) -> None:
    from edgeret.decode import decode
    from edgeret.duplicates import find_duplicates, knn
    from edgeret.library import Library
    from edgeret.picture import signature
    from edgeret.testing.shared import DEVSET

    if not (DEVSET / "gt.json").is_file():
        print(f"labelled benchmark skipped: no devset at {DEVSET}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = keep or Path(tmp)
        photos = root / "photos"
        t0 = time.perf_counter()
        gt, labels = build_variants(DEVSET, photos, limit)
        print(f"labelled: {len(gt)} devset photos x (original + {len(labels) // len(gt) - 1} versions) = "
              f"{len(labels)} photos, written in {time.perf_counter() - t0:.0f} s; k={k}, threshold={threshold}")
        sample = [p for p, lab in labels.items() if lab["kind"] == "original"][:50]
        images = [decode(p) for p in sample]
        t1 = time.perf_counter()
        for im in images:
            signature(im)
        print(f"  signature at index time: {(time.perf_counter() - t1) / len(images) * 1000:.1f} ms per photo "
              f"(decoded 768 px devset photos, 1 thread)")
        for name, spec in encoders.items():
            lib_dir = root / f"lib-{name}"  # a --keep folder's library is brought up to date, not rebuilt
            with Library(lib_dir, writable=True) as lib:
                t2 = time.perf_counter()
                lib.index([photos], encoder_spec=spec, regions="off", threads=threads)
                t3 = time.perf_counter()
                groups = find_duplicates(lib, threshold=threshold, k=k)
                t4 = time.perf_counter()
                keys, matrix = lib.catalog.vectors()
                nbr, sim = knn(matrix, k)
                key_path = dict(lib.catalog.photos())
            r = score(groups, labels, gt, nbr, sim, keys, key_path, threshold)
            print(f"\n  encoder {name}: indexed in {t3 - t2:.0f} s, duplicates in {t4 - t3:.1f} s")
            print(f"  {'variant':<14} {'recall':>7} {'precision':>9}   today's rule (cosine >= {threshold}): "
                  f"recall, precision")
            for kind, v in r["new"].items():
                o = r["old"][kind]
                print(f"  {kind:<14} {v['recall']:7.3f} {v['precision'] or 0:9.3f}   {o['recall']:7.3f} "
                      f"{o['precision'] or 0:9.3f}   (n={v['n']})")
            print(f"  different devset photos called the same picture: {r['wrong_within'][0]} of "
                  f"{r['pairs_within']} pairs within devset groups (today's rule: {r['wrong_within'][1]}), "
                  f"{r['wrong_all'][0]} of {r['pairs_all']} pairs overall (today's rule: {r['wrong_all'][1]})")
            print(f"  similar-shot groups reported: {r['similar_groups']}")


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
    ap.add_argument("--labelled", action="store_true", help="the labelled same-picture benchmark (needs ../shared)")
    ap.add_argument("--limit", type=int, help="only the first N devset photos (labelled)")
    ap.add_argument("--keep", type=Path, help="write the labelled photos and libraries here (kept)")
    ap.add_argument("--n", type=int, default=100_000, help="photos for the time benchmark (0 skips it)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--watch-trials", type=int, default=10, help="0 skips the watch benchmark")
    ap.add_argument("--burst", type=int, default=500)
    args = ap.parse_args()
    if args.labelled:
        import shape_models

        from edgeret.testing.shared import MNV2

        vit = Path(tempfile.mkdtemp()) / "vit-b32-random"
        shape_models.write_clip_b32(vit)
        encoders = {"mnv2-gem": str(MNV2), "vit-b32-random": str(vit)}
        bench_labelled(encoders, args.threads, args.k, args.threshold, args.limit, args.keep)
        shutil.rmtree(vit.parent, ignore_errors=True)
    if args.n:
        bench_time(args.n, args.dim, args.threads, args.k, args.threshold)
    if args.watch_trials:
        bench_watch(args.watch_trials, args.burst)
