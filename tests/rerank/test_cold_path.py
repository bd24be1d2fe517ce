"""A cold library: stored candidates judged first, the query's tokens reused, sv verdicts in front of the MLLM."""

import math

import pytest

from edgeret.box import Box, RegionQuery
from edgeret.decode import decode
from edgeret.library import Library
from edgeret.query import run_query
from edgeret.rerankers import MeanReranker, PreviewReranker, open_reranker


class Encodes:
    """Counts vision-encoder runs of a re-ranker (the real encoder still runs)."""

    def __init__(self, mllm):
        self.n, self._real = 0, mllm.encode
        mllm.encode = self

    def __call__(self, image):
        self.n += 1
        return self._real(image)


def _hits(lib, key=1, k=8):
    return lib.search_vectors(lib.vector_of(key)[None], k=k)[0]


def test_stored_candidates_are_judged_first_with_the_same_scores(mllm):
    lib, rr = mllm
    hits = _hits(lib)
    query = decode(hits[0].path)
    plain = dict(rr.score(query, rr.candidates(hits)))  # every candidate encoded on the fly, then stored
    for h in hits[1::2]:
        rr.store.delete(h.key)  # every other one cold again
    cands = rr.candidates(hits)
    order = [i for i, _ in rr.score(query, cands)]
    stored = [i for i, c in enumerate(cands) if not callable(c)]
    assert order[:len(stored)] == stored and sorted(order) == list(range(len(hits)))
    again = dict(rr.score(query, rr.candidates(hits)))
    assert again == pytest.approx(plain, abs=2e-3)  # f16 store vs f32 tokens fresh from the encoder


def test_a_library_photo_query_uses_its_stored_tokens(mllm):
    lib, rr = mllm
    hits = _hits(lib)
    encodes = Encodes(rr.mllm)
    query = decode(hits[0].path)  # a library photo, as the app and the CLI read it
    list(rr.score(query, rr.candidates(hits)))
    assert encodes.n == len(hits)  # the query is the first hit: encoded once, as a candidate or as the query
    assert rr.ready(query, rr.candidates(hits))
    list(rr.score(decode(hits[0].path), rr.candidates(hits)))
    assert encodes.n == len(hits)  # nothing encoded again: query and candidates all from the store


def test_a_pasted_photo_or_box_query_is_cached_by_its_pixels(mllm, photos):
    lib, rr = mllm
    hits = _hits(lib, k=3)
    list(rr.score(decode(hits[0].path), rr.candidates(hits)))  # the candidates' tokens are now stored
    encodes = Encodes(rr.mllm)
    outside = decode(photos / "b" / "drawing.png").convert("RGB").rotate(90, expand=True)
    outside.info.clear()  # not a library file: only its pixels identify it
    box = RegionQuery(outside, Box(2, 2, 40, 40))
    first = [dict(rr.score(q, rr.candidates(hits))) for q in (outside, box)]
    assert encodes.n == 2
    second = [dict(rr.score(q.copy() if q is outside else RegionQuery(q.image.copy(), q.box), rr.candidates(hits)))
              for q in (outside, box)]
    assert encodes.n == 2 and second == first  # the same pixels (and box) again: the cached tokens


def test_preview_puts_sv_verdicts_first_then_the_mllm_replaces_them(indexed, tiny_vlm):
    model, mmproj = tiny_vlm
    with Library(indexed) as lib:
        rr = open_reranker("mllm", lib, preview=True, vlm=model, mmproj=mmproj, threads=1)
        assert isinstance(rr, PreviewReranker)
        try:
            hits = _hits(lib)
            steps = list(run_query(hits, decode(hits[0].path), rr))
            assert len(steps) == 1 + 2 * len(hits)  # first stage, a preview per candidate, an MLLM verdict each
            preview = steps[len(hits)]
            assert all(r.provisional and r.p_same is not None for r in preview)
            final = steps[-1]
            assert not any(r.provisional for r in final)
            plain = open_reranker("mllm", lib, vlm=model, mmproj=mmproj, threads=1)
            try:
                alone = {r.key: r.p_same for r in list(run_query(hits, decode(hits[0].path), plain))[-1]}
            finally:
                plain.close()
            assert {r.key: r.p_same for r in final} == pytest.approx(alone, abs=2e-3)
            # warm now (every token stored, the query's too): no preview, the MLLM straight away
            assert len(list(run_query(hits, decode(hits[0].path), rr))) == 1 + len(hits)
        finally:
            rr.close()


def test_preview_is_skipped_for_text_queries(indexed, tiny_vlm):
    model, mmproj = tiny_vlm
    with Library(indexed) as lib:
        rr = open_reranker("mllm", lib, preview=True, vlm=model, mmproj=mmproj, threads=1)
        try:
            hits = _hits(lib, k=4)
            steps = list(run_query(hits, "a red bicycle", rr))
        finally:
            rr.close()
    assert len(steps) == 1 + len(hits) and not any(r.provisional for r in steps[-1])


def test_mean_matches_each_part_by_index_whatever_order_they_judge_in(indexed, tiny_vlm):
    model, mmproj = tiny_vlm
    with Library(indexed) as lib:
        rr = open_reranker("mllm+sv", lib, vlm=model, mmproj=mmproj, threads=1)
        assert isinstance(rr, MeanReranker)
        try:
            hits = _hits(lib)
            query = decode(hits[0].path)
            list(rr.score(query, rr.candidates(hits)))
            mllm, sv = rr.parts
            for h in hits[::3]:
                mllm.store.delete(h.key)  # the MLLM now judges in another order than sv
            mean = dict(rr.score(query, rr.candidates(hits)))
            each = [dict(p.score(query, p.candidates(hits))) for p in (mllm, sv)]
        finally:
            rr.close()
    for i, p in mean.items():
        parts = [e[i] for e in each if not math.isnan(e[i])]
        assert p == pytest.approx(sum(parts) / len(parts), abs=2e-3)
