"""Shared fixtures for every test area: isolated dirs, the generated models (each built ONCE per session), photos,
and the shared dev data (skipped when absent). Area conftests add what only their area needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeret.testing.photos import make_photo
from edgeret.testing.shared import DEVSET, MNV2, SHARED

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
PROJECTORS = ("mlp", "idefics3")  # the projector families every re-ranker test runs against


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real library, models or config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("EDGERET_MODELS", str(home / "models"))
    monkeypatch.setenv("EDGERET_CONFIG", str(home / "config.toml"))
    for name in ("EDGERET_LIBRARY", "EDGERET_ENCODER", "EDGERET_VLM_WEIGHTS", "EDGERET_THREADS",
                 "EDGERET_EXACT_BELOW"):
        monkeypatch.delenv(name, raising=False)
    # nice 19, not SCHED_IDLE, for background token preparation: on a busy test machine an idle-class child could wait
    # for minutes (the test of the idle class sets it back itself)
    monkeypatch.setenv("EDGERET_PREPARE_PRIORITY", "low")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    from edgeret.testing import tiny_onnx

    return tiny_onnx.write(tmp_path_factory.mktemp("enc") / "tiny-embed", "embedding")


@pytest.fixture(scope="session")
def tiny_fmap_encoder(tmp_path_factory) -> Path:
    from edgeret.testing import tiny_onnx

    return tiny_onnx.write(tmp_path_factory.mktemp("enc") / "tiny-fmap", "feature_map")


@pytest.fixture(scope="session")
def towers(tmp_path_factory) -> tuple[Path, Path]:
    """A generated CLIP-style (image tower, text tower) pair whose embeddings share one space (testing.tiny_text)."""
    from edgeret.testing import tiny_text

    return tiny_text.write(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def thumb_encoder(tmp_path_factory) -> Path:
    """The thumbnail image tower near-duplicate tests use (testing.tiny_text.write_thumbnail_encoder)."""
    from edgeret.testing import tiny_text

    return tiny_text.write_thumbnail_encoder(tmp_path_factory.mktemp("thumb") / "thumb")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """f32 (text, mmproj) GGUF pairs per projector family in PROJECTORS (each file < 1 MB)."""
    from edgeret.testing import tiny_gguf

    out = tmp_path_factory.mktemp("rerank-models")
    return {p: tiny_gguf.make_pair(out / p, p) for p in PROJECTORS}


@pytest.fixture(scope="session")
def tiny_vlm(tiny_models) -> tuple[Path, Path]:
    """The idefics3 (SmolVLM-style) pair: the re-ranker the GUI and CLI tests install and run."""
    return tiny_models["idefics3"]


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


@pytest.fixture
def indexed(tmp_path, photos, tiny_encoder) -> Path:
    """The folder of a library of `photos`, indexed with the tiny encoder (closed again)."""
    from edgeret.library import Library

    with Library(tmp_path / "lib", writable=True) as lib:
        lib.index([photos], encoder_spec=str(tiny_encoder), threads=1)
    return tmp_path / "lib"


@pytest.fixture
def shared_devset() -> Path:
    if not (DEVSET / "gt.json").is_file() or not (MNV2 / "model.onnx").is_file():
        pytest.skip(f"shared dev data not found at {SHARED}")
    return DEVSET
