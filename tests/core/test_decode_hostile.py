"""Hostile and unusual images: BigTIFF, bombs, noisy files, and a bounded fuzz over mutated JPEG/PNG/TIFF bytes."""

import io
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeret.decode import decode, decode_bytes
from edgeret.errors import DecodeError

ROOT = Path(__file__).resolve().parents[2]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data never comes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_bigtiff_is_an_image(tmp_path):
    path = tmp_path / "big.tif"
    Image.new("RGB", (50, 40), (10, 200, 30)).save(path, format="TIFF", big_tiff=True)
    assert path.read_bytes()[:4] == b"II+\x00"
    assert decode(path).size == (50, 40)


@pytest.mark.parametrize("megapixels", [300, 600])  # above our limit, and above Pillow's own (twice ours)
def test_bomb_message_names_the_documented_limit(tmp_path, megapixels):
    side = int((megapixels * 1_000_000) ** 0.5)
    with pytest.raises(DecodeError, match="exceeds the 250 MP limit") as e:
        decode_bytes(_png_header_only(side, side))
    assert "500" not in str(e.value)


def test_pillow_warnings_go_to_the_log_not_the_terminal(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x0f\x01\x02\x00\xff\xff\x00\x00\x99\x99\x99\x99"
    path = tmp_path / "bad-exif.jpg"
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:])
    code = f"from edgeret.decode import decode; print(decode({str(path)!r}).size)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0 and p.stdout.strip() == "(20, 20)"
    assert "Warning" not in p.stderr, p.stderr


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (48, 64, 3), np.uint8))
    out = []
    for fmt, kw in [("JPEG", {"quality": 80}), ("PNG", {}), ("TIFF", {"compression": "tiff_deflate"}),
                    ("TIFF", {}), ("GIF", {}), ("WEBP", {})]:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


def _mutate(rng, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # flip bytes, mostly in the header where the structure lives
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(min(len(b), 256))) if rng.random() < 0.7 else int(rng.integers(len(b)))
            b[i] = int(rng.integers(256))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(1, len(b)))]
    elif kind == 2:  # big numbers where sizes and offsets are
        i = int(rng.integers(4, min(len(b) - 4, 128)))
        b[i:i + 4] = struct.pack("<I", int(rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 65536, 1 << 20])))
    else:  # duplicate or drop a run
        i, n = int(rng.integers(len(b))), int(rng.integers(1, 64))
        b = b[:i] + (b[i:i + n] * int(rng.integers(2, 20)) if rng.random() < 0.5 else b[i + n:])
    return bytes(b)


def test_mutated_images_decode_or_fail_with_a_reason():
    rng = np.random.default_rng(1)
    seeds = _seeds()
    t0, decoded, failed = time.perf_counter(), 0, 0
    for i in range(600):
        data = _mutate(rng, seeds[i % len(seeds)])
        try:
            im = decode_bytes(data, min_side=32)
        except DecodeError as e:
            assert str(e)
            failed += 1
            continue
        assert im.mode == "RGB" and im.width > 0 and im.height > 0
        decoded += 1
    assert decoded and failed
    assert time.perf_counter() - t0 < 30
