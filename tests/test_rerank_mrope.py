"""Qwen2-VL-style re-rankers (M-RoPE text model + "qwen2vl_merger" projector), generated like the others.

M-RoPE models place image tokens on a 2-D grid, so their inputs are not plain embedding rows: edgeret decodes them
piece by piece through libmtmd's helper (positions from the helper, never counted by hand) and must still equal a
naive evaluation, for photo and text queries, with images of any size (the token count follows the image size).
"""

import numpy as np
import pytest
import tiny_gguf
from rerank_fixtures import CANDIDATES, QUERY, photo

from edgeret.errors import ModelError
from edgeret.rerank.mllm import MllmReranker
from edgeret.rerank.tokens import TokenStore

TOL = 1e-4


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    model, mmproj = tiny_gguf.make_pair(tmp_path_factory.mktemp("qwen2vl"), "qwen2vl")
    assert model.stat().st_size < 1 << 20 and mmproj.stat().st_size < 1 << 20
    with MllmReranker(model, mmproj, threads=1) as r:
        yield r


def test_the_pair_loads_as_m_rope_with_per_piece_decoding(qwen):
    assert qwen.projector == "qwen2vl_merger" and qwen.architecture == "qwen2vl"
    assert qwen._mrope and not qwen.single_batch


def test_fast_path_equals_naive_for_photo_and_text_queries(qwen, tmp_path):
    with TokenStore(tmp_path / "tok.sqlite", qwen.model_id, codec="f32") as store:
        for i, image in enumerate(CANDIDATES):
            store.put(i, qwen.encode(image))
        stored = [store.get(i) for i in range(len(CANDIDATES))]
    query = qwen.encode(QUERY)
    for image, vt in zip(CANDIDATES, stored, strict=True):
        assert np.abs(qwen.candidate_logits(query, vt) - qwen.naive_logits(QUERY, image)).max() <= TOL
        assert np.abs(qwen.candidate_logits("a red bicycle", vt) - qwen.naive_logits("a red bicycle", image)).max() \
            <= TOL
    fast = dict(qwen.score(query, stored))  # one prefix, KV truncated back to it for every candidate
    naive = {i: qwen.p_same(qwen.naive_logits(QUERY, c)) for i, c in enumerate(CANDIDATES)}
    assert fast == pytest.approx(naive, abs=1e-5) and all(0.0 <= p <= 1.0 for p in fast.values())


def test_token_count_follows_the_image_size(qwen):
    small, large = qwen.encode(photo(7, 32, 32)), qwen.encode(photo(7, 96, 64))
    assert large.n_tokens > small.n_tokens > 0
    counts = qwen.token_counts(qwen.encode(QUERY), large)
    assert counts["candidate_image"] == large.n_tokens and counts["candidate_text"] > 0


def test_pooled_tokens_are_refused_here(qwen, tmp_path):
    with TokenStore(tmp_path / "pool.sqlite", qwen.model_id, codec="pool2") as store:
        store.put(0, qwen.encode(CANDIDATES[1]))
        pooled = store.get(0)
    with pytest.raises(ModelError, match="single-batch"):
        list(qwen.score(QUERY, [pooled]))
