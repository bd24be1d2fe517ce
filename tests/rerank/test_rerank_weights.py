"""Small quantized re-ranker text models run from an f32 copy on AVX-512 CPUs (edgeret/rerank/weights.py)."""

import os
from pathlib import Path

import numpy as np
import pytest

from edgeret.errors import UsageError
from edgeret.modelfiles import read_gguf
from edgeret.rerank import weights
from edgeret.rerank.mllm import MllmReranker
from edgeret.testing import tiny_gguf
from tests.helpers.rerank import CANDIDATES, QUERY

needs_avx512 = pytest.mark.skipif(not weights.cpu_has_avx512(), reason="auto unpacks only on AVX-512 CPUs")


@pytest.fixture(scope="module")
def q8_pair(tmp_path_factory):
    return tiny_gguf.make_pair(tmp_path_factory.mktemp("q8w"), "idefics3", text_type="q8_0")


def weights_dir() -> Path:
    return Path(os.environ["EDGERET_MODELS"]) / weights.COPIES


def _matrix_types(path) -> set[int]:
    return {t for t, ne, _ in read_gguf(path).tensors.values() if len(ne) >= 2}


@needs_avx512
def test_auto_runs_a_small_quantized_model_from_an_f32_copy(q8_pair):
    model, mmproj = q8_pair
    with MllmReranker(model, mmproj, threads=1) as r:
        copy, model_id = r.weights_path, r.model_id
        assert copy != model and copy.parent == weights_dir() and _matrix_types(copy) == {0}
        # the copy is the same model: the fast path still equals a naive evaluation, bit for bit
        fast = r.candidate_logits(QUERY, CANDIDATES[0])
        assert np.abs(fast - r.naive_logits(QUERY, CANDIDATES[0])).max() <= 1e-4
        p_copy = [p for _, p in r.score(QUERY, [lambda c=c: c for c in CANDIDATES])]
    stamp = copy.stat().st_mtime_ns
    with MllmReranker(model, mmproj, threads=1, weights="as-is") as q8:
        assert q8.weights_path == model
        assert q8.model_id == model_id  # stored visual tokens stay valid whichever file runs
        p_q8 = [p for _, p in q8.score(QUERY, [lambda c=c: c for c in CANDIDATES])]
    # unpacking is exact; what differs is llama.cpp's 8-bit rounding of activations in the Q8_0 kernels
    assert np.abs(np.array(p_copy) - np.array(p_q8)).max() < 0.02  # 0.0023 measured
    with MllmReranker(model, mmproj, threads=1) as again:
        assert again.weights_path == copy
    assert copy.stat().st_mtime_ns == stamp  # made once, reused
    size = copy.stat().st_size
    with copy.open("r+b") as f:  # damaged on disk: refused before llama.cpp opens it, and made again
        f.truncate(size // 2)
    with MllmReranker(model, mmproj, threads=1) as healed:
        assert healed.weights_path == copy and copy.stat().st_size == size


def test_f32_models_and_as_is_keep_their_file(tiny_models, q8_pair):
    model, mmproj = tiny_models["mlp"]  # already f32: nothing to unpack, whatever the policy
    for policy in weights.POLICIES:
        with MllmReranker(model, mmproj, threads=1, weights=policy) as r:
            assert r.weights_path == model
    assert not weights_dir().exists()


def test_auto_keeps_large_models_quantized(q8_pair, monkeypatch):
    monkeypatch.setattr(weights, "MAX_AUTO_PARAMS", 1000)
    with MllmReranker(*q8_pair, threads=1) as r:
        assert r.weights_path == q8_pair[0]


def test_f32_policy_from_the_environment(q8_pair, monkeypatch):
    monkeypatch.setenv("EDGERET_VLM_WEIGHTS", "f32")
    monkeypatch.setattr(weights, "cpu_has_avx512", lambda: False)  # "f32" does not ask the CPU
    with MllmReranker(*q8_pair, threads=1) as r:
        assert r.weights_path != q8_pair[0] and _matrix_types(r.weights_path) == {0}


def test_unknown_policy_is_refused(q8_pair, monkeypatch):
    monkeypatch.setenv("EDGERET_VLM_WEIGHTS", "f64")
    with pytest.raises(UsageError, match="EDGERET_VLM_WEIGHTS"):
        MllmReranker(*q8_pair, threads=1)
    with pytest.raises(UsageError, match="weights policy"):
        MllmReranker(*q8_pair, threads=1, weights="fast")
