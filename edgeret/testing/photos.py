"""Deterministic synthetic photos for tests and benchmarks, and a snapshot to prove a folder was not written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def make_photo(path: Path, seed: int, size=(320, 240), fmt: str | None = None, **save) -> Path:
    """A deterministic synthetic photo saved at `path`: coloured shapes on a gradient, distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    grad = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * rng.uniform(0.2, 1, 3)
    base = np.broadcast_to(grad, (h, w, 3)).astype(np.uint8)
    im = Image.fromarray(base)
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = rng.integers(0, w - 20), rng.integers(0, h - 20)
        x1, y1 = x0 + rng.integers(10, w // 2), y0 + rng.integers(10, h // 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **save)
    return path


def blobs(seed: int, w: int, h: int) -> Image.Image:
    """A deterministic in-memory RGB image: smooth colour blobs plus noise, so encoders see structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, max(w, h) / 2)
        img += rng.uniform(0, 255, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


def textured(seed: int, size=(480, 360)) -> Image.Image:
    """Blob texture + shapes: plenty of corners and blobs for local features, distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = Image.fromarray(rng.integers(0, 256, (h // 12, w // 12, 3), dtype=np.uint8))
    im = small.resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = (x0, y0, x0 + int(rng.integers(10, w // 5)), y0 + int(rng.integers(10, h // 5)))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill, outline=(0, 0, 0))
    return im.filter(ImageFilter.GaussianBlur(0.8))


def warped(im: Image.Image, angle=12.0, scale=1.3, crop=0.75) -> Image.Image:
    """Rotate + zoom, crop the centre, add a perspective tilt and a brightness change: the same object, re-shot."""
    import cv2

    out = im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    w, h = out.size
    out = out.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC)
    cw, ch = int(w * crop), int(h * crop)
    left, top = (out.width - cw) // 2, (out.height - ch) // 2
    out = out.crop((left, top, left + cw, top + ch))
    src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    dst = np.array([[0, 0], [cw, 0.06 * ch], [cw, 0.94 * ch], [0, ch]], np.float32)
    m = cv2.getPerspectiveTransform(dst, src).flatten()[:8]
    out = out.transform((cw, ch), Image.Transform.PERSPECTIVE, tuple(m), Image.Resampling.BICUBIC)
    return Image.fromarray(np.clip(np.asarray(out, np.float32) * 0.8 + 20, 0, 255).astype(np.uint8))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under root: proof that nothing was written there."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}
