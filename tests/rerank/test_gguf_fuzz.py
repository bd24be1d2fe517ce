"""Crafted GGUF pairs never crash llama.cpp: each is refused with a message or loads and encodes cleanly.

Every pair the checks accept is loaded in a subprocess (a native crash there fails the test instead of the run),
and the subprocess must end without a signal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeret.errors import ModelError
from edgeret.gguf_rules import check_pair
from edgeret.modelfiles import read_gguf
from tests.helpers.gguf_mutate import rewrite

ROOT = Path(__file__).resolve().parents[2]
LOAD = """
import sys
from PIL import Image
from edgeret.rerank.mllm import MllmReranker
r = MllmReranker(sys.argv[1], sys.argv[2], threads=1)
try:
    r.encode(Image.new("RGB", (64, 48), (120, 30, 200)))
finally:
    r.close()
"""
SIZES = ["block_count", "embedding_length", "head_count", "patch_size", "image_size", "feed_forward_length",
         "scale_factor", "context_length", "head_count_kv"]


def _load(model: Path, mmproj: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", LOAD, str(model), str(mmproj)], capture_output=True, text=True,
                          env=env, timeout=120)


def _accepted(model: Path, mmproj: Path) -> bool:
    try:
        check_pair(read_gguf(model), read_gguf(mmproj))
    except ModelError as e:
        assert str(e)
        return False
    return True


def test_the_reported_crashers_are_refused_with_a_message(tiny_models, tmp_path):
    model, mmproj = tiny_models["mlp"]
    crafted = [
        (rewrite(model, tmp_path / "blocks.gguf", values={"llama.block_count": 1}), mmproj),  # fewer than tensors
        (rewrite(model, tmp_path / "blocks3.gguf", values={"llama.block_count": 3}), mmproj),
        (model, rewrite(mmproj, tmp_path / "no-mm.gguf", drop={"mm.2.weight", "mm.2.bias"})),  # was SIGSEGV
        (model, rewrite(mmproj, tmp_path / "patch0.gguf", values={"clip.vision.patch_size": 0})),
    ]
    for text, proj in crafted:
        p = _load(text, proj)
        assert p.returncode == 1 and "ModelError" in p.stderr, (text.name, proj.name, p.returncode, p.stderr[-500:])


def _mutant(rng, header, path: Path, out: Path) -> Path:
    if rng.random() < 0.5:
        keys = [k for k in header.values if isinstance(header.values[k], int) and not isinstance(header.values[k], bool)
                and any(k.endswith(s) for s in SIZES)]
        key = keys[int(rng.integers(len(keys)))]
        old = header.values[key]
        new = int(rng.choice([0, 1, old - 1, old + 1, 2 * old, 7, 1 << 20]))
        return rewrite(path, out, values={key: max(0, new)})
    names = sorted(header.tensors)
    gone = {names[int(i)] for i in rng.integers(len(names), size=int(rng.integers(1, 3)))}
    return rewrite(path, out, drop=gone)


@pytest.mark.parametrize("family", ["mlp", "idefics3"])
def test_mutated_pairs_are_refused_or_load_without_a_signal(family, tiny_models, tmp_path):
    model, mmproj = tiny_models[family]
    headers = {model: read_gguf(model), mmproj: read_gguf(mmproj)}
    rng = np.random.default_rng(len(family))
    t0, loaded, refused = time.perf_counter(), 0, 0
    for i in range(40):
        which = model if rng.random() < 0.5 else mmproj
        mutated = _mutant(rng, headers[which], which, tmp_path / f"m{i}.gguf")
        pair = (mutated, mmproj) if which == model else (model, mutated)
        if not _accepted(*pair):
            refused += 1
            continue
        if loaded >= 4:  # each load is a subprocess of ~2 s: bounded
            continue
        loaded += 1
        p = _load(*pair)
        assert p.returncode >= 0, (family, pair[0].name, pair[1].name, p.returncode, p.stderr[-500:])
    assert refused > 0 and loaded > 0, (refused, loaded)
    assert time.perf_counter() - t0 < 60
