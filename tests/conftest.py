"""Shared fixtures: generated encoders and photos, the shared dev data (skipped when absent), isolated dirs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED = Path(os.environ.get("EDGERET_SHARED", ROOT.parent / "shared"))
DEVSET = SHARED / "data" / "devset"
MNV2 = SHARED / "models" / "mnv2-gem"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real library, models or config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("EDGERET_MODELS", str(home / "models"))
    monkeypatch.setenv("EDGERET_CONFIG", str(home / "config.toml"))
    monkeypatch.delenv("EDGERET_LIBRARY", raising=False)
    monkeypatch.delenv("EDGERET_ENCODER", raising=False)
    monkeypatch.delenv("EDGERET_VLM_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    import tiny_onnx

    return tiny_onnx.write(tmp_path_factory.mktemp("enc") / "tiny-embed", "embedding")


@pytest.fixture(scope="session")
def tiny_fmap_encoder(tmp_path_factory) -> Path:
    import tiny_onnx

    return tiny_onnx.write(tmp_path_factory.mktemp("enc") / "tiny-fmap", "feature_map")


@pytest.fixture(scope="session")
def towers(tmp_path_factory) -> tuple[Path, Path]:
    """A generated CLIP-style (image tower, text tower) pair whose embeddings share one space (scripts/tiny_text)."""
    import tiny_text

    return tiny_text.write(tmp_path_factory.mktemp("clip"))


def make_photo(path: Path, seed: int, size=(320, 240), fmt: str | None = None, **save) -> Path:
    """A deterministic synthetic photo: coloured shapes on a gradient, distinct per seed."""
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


@pytest.fixture
def photos(tmp_path) -> Path:
    """A small photo folder: 12 JPEGs in two subfolders plus a PNG and a hidden file."""
    root = tmp_path / "photos"
    for i in range(8):
        make_photo(root / "a" / f"img{i:02d}.jpg", seed=i)
    for i in range(8, 12):
        make_photo(root / "b" / f"img{i:02d}.jpg", seed=i)
    make_photo(root / "b" / "drawing.png", seed=99)
    make_photo(root / ".hidden" / "secret.jpg", seed=100)
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under root: proof that nothing was written there."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture
def shared_devset() -> Path:
    if not (DEVSET / "gt.json").is_file() or not (MNV2 / "model.onnx").is_file():
        pytest.skip(f"shared dev data not found at {SHARED}")
    return DEVSET
