"""Indexing throughput: edgeret's indexer vs a bare decode + resize + onnxruntime loop on the same files.

    python scripts/bench_index.py [--n 500] [--size 3000x2000] [--encoder DIR] [--threads 2]

Photos are generated once (deterministic JPEGs) and cached; the default encoder is a shape-faithful random
CLIP ViT-B/32 image tower (scripts/shape_models.py). Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeret.encoders import ImageEncoder  # noqa: E402
from edgeret.library import Library  # noqa: E402

CACHE = Path(os.environ.get("EDGERET_BENCH_CACHE", Path.home() / ".cache" / "edgeret-bench"))


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    """Deterministic camera-sized JPEGs: smooth gradients, shapes and sensor-like noise (~1-2 MB each)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    w, h = size
    for i in range(n):
        p = folder / f"photo_{i:05d}.jpg"
        paths.append(p)
        if p.exists():
            continue
        rng = np.random.default_rng(i)
        small = Image.fromarray(rng.integers(0, 256, (h // 64, w // 64, 3), dtype=np.uint8))
        im = small.resize(size, Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(im)
        for _ in range(12):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            box = (x0, y0, x0 + int(rng.integers(50, w // 3)), y0 + int(rng.integers(50, h // 3)))
            draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        im = im.filter(ImageFilter.GaussianBlur(2))
        noise = rng.normal(0, 6, (h, w, 3))
        im = Image.fromarray(np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8))
        im.save(p, quality=90)
    return paths


def bare_loop(paths: list[Path], encoder: ImageEncoder, batch: int) -> float:
    """Images/s of the plain sequential loop: Pillow decode (DCT-scaled) + resize + onnxruntime, no overlap."""
    pre = encoder.preprocess
    t0 = time.perf_counter()
    tensors = []
    for p in paths:
        with Image.open(p) as im:
            im.draft("RGB", (pre.input_size, pre.input_size))
            tensors.append(pre(im.convert("RGB")))
        if len(tensors) == batch:
            encoder.encode(tensors)
            tensors = []
    if tensors:
        encoder.encode(tensors)
    return len(paths) / (time.perf_counter() - t0)


def edgeret_index(photo_dir: Path, encoder: ImageEncoder, threads: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, Library(Path(tmp) / "lib", writable=True) as lib:
        t0 = time.perf_counter()
        report = lib.index([photo_dir], encoder=encoder, threads=threads, batch_size=batch)
        elapsed = time.perf_counter() - t0
    assert report.indexed == len(list(photo_dir.glob("*.jpg"))) and not report.failed, report.as_dict()
    return report.indexed / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", default="3000x2000")
    ap.add_argument("--encoder", type=Path, help="encoder folder (default: shape-faithful CLIP ViT-B/32)")
    ap.add_argument("--int8", action="store_true", help="with the default encoder: the int8 dynamic-quantised tower")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs of each; the best of each is kept")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.lower().split("x"))
    photo_dir = CACHE / f"photos-{size[0]}x{size[1]}-{args.n}"
    paths = make_photos(photo_dir, args.n, size)
    if args.encoder is None:
        import shape_models

        args.encoder = CACHE / ("clip-vit-b32-random-int8" if args.int8 else "clip-vit-b32-random")
        if not (args.encoder / "model.onnx").exists():
            shape_models.write_clip_b32(args.encoder, int8=args.int8)
    encoder = ImageEncoder(args.encoder, threads=args.threads)
    encoder.encode_images([Image.new("RGB", (256, 256))] * 2)  # warm-up
    bare, ours = [], []
    for _ in range(args.repeat):
        bare.append(bare_loop(paths, encoder, args.batch))
        ours.append(edgeret_index(photo_dir, encoder, args.threads, args.batch))
    report = {
        "encoder": str(args.encoder), "photos": args.n, "size": args.size, "threads": args.threads,
        "batch": args.batch, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "bare_loop_images_per_s": round(max(bare), 2), "edgeret_images_per_s": round(max(ours), 2),
        "ratio": round(max(ours) / max(bare), 3), "runs": {"bare": bare, "edgeret": ours},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
