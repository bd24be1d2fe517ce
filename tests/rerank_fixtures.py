"""Shared helpers for the re-ranker tests: generated tiny GGUF pairs, deterministic images, loaded re-rankers.

Imported by tests/test_rerank_*.py (fixtures are re-exported there with `from rerank_fixtures import ...`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:  # conftest.py does this too; kept so the module stands alone
    sys.path.insert(0, str(ROOT / "scripts"))

import tiny_gguf  # noqa: E402

PROJECTORS = ("mlp", "idefics3")


def photo(seed: int, w: int, h: int) -> Image.Image:
    """A deterministic RGB image: smooth colour blobs plus noise, so encoders see structure, not just noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, max(w, h) / 2)
        img += rng.uniform(0, 255, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


QUERY = photo(100, 80, 48)
CANDIDATES = [photo(1, 40, 60), photo(2, 64, 64), photo(3, 100, 30), QUERY, photo(4, 33, 77)]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """f32 (text, mmproj) pairs per projector family, generated once per session (each file < 1 MB)."""
    out = tmp_path_factory.mktemp("rerank-models")
    return {p: tiny_gguf.make_pair(out / p, p) for p in PROJECTORS}


@pytest.fixture(scope="module", params=PROJECTORS)
def reranker(request, tiny_models):
    """A loaded MllmReranker per projector family, closed when the module is done.

    One thread: tiny models gain nothing from two, and a busy CI core would stall a spinning thread pool.
    """
    from edgeret.rerank.mllm import MllmReranker

    model, mmproj = tiny_models[request.param]
    r = MllmReranker(model, mmproj, threads=1)
    yield r
    r.close()
