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


# versions of one picture (duplicate tests and scripts/bench_duplicates.py) ----------------------------------------
VARIANTS = ("resize50", "resize25", "jpeg_q30", "png", "webp", "heic", "crop5", "exif_rotation", "no_metadata")


def with_exif(jpeg: bytes, when: str = "2024:06:01 12:00:00") -> bytes:
    """`jpeg` with an EXIF block (camera, date) inserted after its start marker: same pixels, other bytes."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "edgeret", "test camera", when  # Make, Model, DateTime
    body = exif.tobytes()
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def strip_metadata(jpeg: bytes) -> bytes:
    """`jpeg` without its APP1-APP15 and comment segments (EXIF, XMP, ICC…), pixels untouched, as exiftool -all=."""
    out, i = bytearray(jpeg[:2]), 2
    while i + 4 <= len(jpeg) and jpeg[i] == 0xFF:
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        if not (0xE1 <= marker <= 0xEF or marker == 0xFE):
            out += jpeg[i : i + 2 + length]
        i += 2 + length
    return bytes(out + jpeg[i:])


def make_variant(original: Path, kind: str, out: Path, seed: int = 0) -> Path:
    """Write one version of the JPEG `original` (kind from VARIANTS) to `out` (its suffix is replaced); returns it.

    Every version shows the same picture: resized, re-compressed, converted, cropped by 5 % of each side (at a
    seeded position), stored rotated with an EXIF orientation that turns it upright, or without its metadata.
    """
    from PIL import ImageOps

    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(original) as src:
        im = ImageOps.exif_transpose(src).convert("RGB")
    w, h = im.size
    if kind in ("resize50", "resize25"):
        f = 2 if kind == "resize50" else 4
        target = out.with_suffix(".jpg")
        im.resize((max(1, w // f), max(1, h // f)), Image.Resampling.LANCZOS).save(target, quality=85)
    elif kind == "jpeg_q30":
        target = out.with_suffix(".jpg")
        im.save(target, quality=30)
    elif kind == "png":
        target = out.with_suffix(".png")
        im.save(target)
    elif kind == "webp":
        target = out.with_suffix(".webp")
        im.save(target, quality=80)
    elif kind == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
        target = out.with_suffix(".heic")
        im.save(target, format="HEIF", quality=80)
    elif kind == "crop5":
        rng = np.random.default_rng(seed)
        cw, ch = round(w * 0.95), round(h * 0.95)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        target = out.with_suffix(".jpg")
        im.crop((x0, y0, x0 + cw, y0 + ch)).save(target, quality=90)
    elif kind == "exif_rotation":
        target = out.with_suffix(".jpg")
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view, undoing the stored 90° counter-clockwise
        im.transpose(Image.Transpose.ROTATE_90).save(target, quality=92, exif=exif.tobytes())
    elif kind == "no_metadata":
        target = out.with_suffix(".jpg")
        target.write_bytes(strip_metadata(original.read_bytes()))
    else:
        raise ValueError(f"unknown variant {kind!r}")
    return target
