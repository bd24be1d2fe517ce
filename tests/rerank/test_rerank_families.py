"""Re-rankers whose image tokens cannot ride in one plain embedding batch, generated like the others:

- Qwen2-VL and Qwen2.5-VL ("qwen2vl" M-RoPE text model + "qwen2vl_merger" / "qwen2.5vl_merger" projector, the
  latter with windowed attention): image tokens sit on a 2-D position grid, and their number follows the image size;
- Gemma 3 ("gemma3" text model with sliding-window layers + "gemma3" projector): image tokens attend to each other
  both ways (non-causal), and the sliding window (24 tokens here) is shorter than the prompt.

edgeret decodes their candidates piece by piece through libmtmd's helper (positions and masks from the helper) and
must still equal a naive evaluation, for photo and text queries.
"""

import numpy as np
import pytest

from edgeret.errors import ModelError
from edgeret.rerank.mllm import MllmReranker
from edgeret.rerank.tokens import TokenStore
from edgeret.testing import tiny_gguf
from tests.helpers.rerank import CANDIDATES, QUERY, photo

TOL = 1e-4
FAMILIES = {"qwen2vl": ("qwen2vl", "qwen2vl_merger"), "qwen25vl": ("qwen2vl", "qwen2.5vl_merger"),
            "gemma3": ("gemma3", "gemma3")}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    model, mmproj = tiny_gguf.make_pair(tmp_path_factory.mktemp(request.param), request.param)
    assert model.stat().st_size < 1 << 20 and mmproj.stat().st_size < 1 << 20
    with MllmReranker(model, mmproj, threads=1) as r:
        yield request.param, r


def test_the_pair_loads_with_per_piece_decoding(family):
    name, r = family
    assert (r.architecture, r.projector) == FAMILIES[name] and not r.single_batch
    assert (r.session.mrope, r.session.non_causal) == ((False, True) if name == "gemma3" else (True, False))


def test_fast_path_equals_naive_for_photo_and_text_queries(family, tmp_path):
    name, r = family
    with TokenStore(tmp_path / "tok.sqlite", r.model_id, codec="f32") as store:
        for i, image in enumerate(CANDIDATES):
            store.put(i, r.encode(image))
        stored = [store.get(i) for i in range(len(CANDIDATES))]
    query = r.encode(QUERY)
    for image, vt in zip(CANDIDATES, stored, strict=True):
        assert np.abs(r.candidate_logits(query, vt) - r.naive_logits(QUERY, image)).max() <= TOL
        assert np.abs(r.candidate_logits("a red bicycle", vt) - r.naive_logits("a red bicycle", image)).max() <= TOL
    fast = dict(r.score(query, stored))  # one prefix, the cache truncated back to it for every candidate
    naive = {i: r.p_same(r.naive_logits(QUERY, c)) for i, c in enumerate(CANDIDATES)}
    assert fast == pytest.approx(naive, abs=1e-5) and all(0.0 <= p <= 1.0 for p in fast.values())
    counts = r.token_counts(query, stored[0])
    if name == "gemma3":
        assert counts["prefix"] + counts["candidate"] > tiny_gguf.SLIDING_WINDOW  # the window really slides


def test_token_count_and_image_size(family):
    name, r = family
    small, large = r.encode(photo(7, 32, 32)), r.encode(photo(7, 96, 64))
    if name != "gemma3":
        assert large.n_tokens > small.n_tokens > 0
    else:  # Gemma 3 resizes every image to its one square tile
        assert large.n_tokens == small.n_tokens > 0


def test_pooled_tokens_are_refused_here(family, tmp_path):
    _, r = family
    with TokenStore(tmp_path / "pool.sqlite", r.model_id, codec="pool2") as store:
        store.put(0, r.encode(CANDIDATES[1]))
        pooled = store.get(0)
    with pytest.raises(ModelError, match="single-batch"):
        list(r.score(QUERY, [pooled]))
