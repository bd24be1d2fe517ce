"""The fast path (prefix reuse + stored visual tokens + single-batch decode) against a naive full evaluation."""

import numpy as np
import pytest

from edgeret.rerank.tokens import TokenStore
from tests.helpers.rerank import CANDIDATES, QUERY

TOL = 1e-4


def _stored_f32(r, images, tmp_path):
    """Encode images, round-trip them through an f32 token store, return what the store gives back."""
    with TokenStore(tmp_path / "tok.sqlite", r.model_id, codec="f32") as store:
        for i, im in enumerate(images):
            store.put(i, r.encode(im))
        return [store.get(i) for i in range(len(images))]


def test_fast_path_logits_equal_naive_evaluation(reranker, tmp_path):
    assert reranker.single_batch  # llama-architecture text model: one llama_decode per candidate
    query, *cands = _stored_f32(reranker, [QUERY, *CANDIDATES], tmp_path)
    for vt, image in zip(cands, CANDIDATES, strict=True):
        fast = reranker.candidate_logits(query, vt)
        naive = reranker.naive_logits(QUERY, image)
        assert fast.shape == naive.shape
        assert np.abs(fast - naive).max() <= TOL


def test_per_piece_fallback_is_exact_too(reranker):
    """The libmtmd-helper path (used for M-RoPE / non-causal models) must agree as well."""
    table = reranker.session.table
    reranker.session.table = None
    try:
        fast = reranker.candidate_logits(QUERY, CANDIDATES[0])
    finally:
        reranker.session.table = table
    assert np.abs(fast - reranker.naive_logits(QUERY, CANDIDATES[0])).max() <= TOL


def test_scores_and_order_match_naive(reranker):
    fast = dict(reranker.score(QUERY, [reranker.encode(c) for c in CANDIDATES]))
    naive = {i: reranker.p_same(reranker.naive_logits(QUERY, c)) for i, c in enumerate(CANDIDATES)}
    assert sorted(fast) == list(range(len(CANDIDATES)))
    for i in fast:
        assert 0.0 <= fast[i] <= 1.0
        assert fast[i] == pytest.approx(naive[i], abs=1e-5)
    assert sorted(fast, key=fast.get) == sorted(naive, key=naive.get)
    assert len({round(p, 4) for p in fast.values()}) > 1  # random weights still separate the candidates


def test_scores_are_deterministic(reranker, tiny_models):
    from edgeret.rerank.mllm import MllmReranker

    tokens = [reranker.encode(c) for c in CANDIDATES]
    first = list(reranker.score(QUERY, tokens))
    assert list(reranker.score(QUERY, tokens)) == first
    proj = "idefics3" if "idefics3" in reranker.projector else "mlp"
    with MllmReranker(*tiny_models[proj], threads=1) as again:
        assert again.model_id == reranker.model_id
        assert list(again.score(QUERY, [again.encode(c) for c in CANDIDATES])) == first


def test_one_decode_call_per_candidate(reranker):
    """Candidate image embeddings and question tokens go to llama.cpp together, in a single llama_decode."""
    calls = []
    real = reranker.session._llama_decode

    def counting(batch):
        calls.append(batch.n_tokens)
        real(batch)

    tokens = [reranker.encode(c) for c in CANDIDATES[:3]]
    reranker.session._llama_decode = counting
    try:
        list(reranker.score(QUERY, tokens))
    finally:
        del reranker.session._llama_decode
    assert len(calls) == 1 + 3  # the prefix once, then one call per candidate
    counts = reranker.token_counts(reranker.encode(QUERY), tokens[0])
    assert calls[1] == counts["candidate"] > counts["candidate_image"] > 0
    print(f"\n{reranker.projector}: token counts {counts}")


def test_prompt_matches_the_stock_chat_handler(tiny_models):
    """Same prompt, same numbers as llama-cpp-python's own MTMDChatHandler (the slow path the bench compares)."""
    from tests.helpers.scripts import load_script

    stock_path = load_script("bench_rerank").stock_path

    from edgeret.rerank.mllm import MllmReranker

    model, mmproj = tiny_models["mlp"]  # fixed-size projector: the stock handler has no image-token cap
    with MllmReranker(model, mmproj, threads=1) as r:
        fast = r.candidate_logits(QUERY, CANDIDATES[0])
        prompt = r.prompt
    _, stock = stock_path(model, mmproj, QUERY, [CANDIDATES[0]], prompt, threads=1, image_tokens=None)
    assert np.abs(stock[0] - fast).max() <= TOL


def test_text_queries_take_the_fast_path_exactly(reranker):
    """A text query: its description sits in the prefix (no query image); fast == naive, and the text matters."""
    tokens = [reranker.encode(c) for c in CANDIDATES]
    for image, vt in zip(CANDIDATES, tokens, strict=True):
        fast = reranker.candidate_logits("a red bicycle", vt)
        assert np.abs(fast - reranker.naive_logits("a red bicycle", image)).max() <= TOL
    red = dict(reranker.score("a red bicycle", tokens))
    blue = dict(reranker.score("a blue car", tokens))
    assert sorted(red) == list(range(len(CANDIDATES))) and all(0.0 <= p <= 1.0 for p in red.values())
    assert red != blue
    assert dict(reranker.score(QUERY, tokens)) != red  # the photo prompt is a different question


def test_boxed_queries_take_the_fast_path_exactly(reranker):
    """A boxed query: its region (with the margin) is the query image and the instruction names the boxed object."""
    from edgeret.box import Box, RegionQuery

    region = RegionQuery(QUERY, Box(20, 8, 60, 40))
    assert region.region().size == (48, 38)  # the 40x32 box grown by 10% a side: 4 px and 3 px
    tokens = [reranker.encode(c) for c in CANDIDATES]
    for image, vt in zip(CANDIDATES, tokens, strict=True):
        fast = reranker.candidate_logits(region, vt)
        assert np.abs(fast - reranker.naive_logits(region, image)).max() <= TOL
    assert "box the user drew" in reranker._layout_for(region).prefix
    boxed = dict(reranker.score(region, tokens))
    assert sorted(boxed) == list(range(len(CANDIDATES))) and all(0.0 <= p <= 1.0 for p in boxed.values())
    assert boxed != dict(reranker.score(region.region(), tokens))  # same image, the instruction differs
    assert boxed != dict(reranker.score(QUERY, tokens))
