"""`edgeret search --rerank` end to end: real index, real libmtmd re-ranker (generated GGUF), visual-token store."""

import json
import math

import pytest

from edgeret.cli import main
from edgeret.library import Library
from edgeret.query import run_query
from edgeret.rerankers import open_reranker
from edgeret.testing import tiny_gguf


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return tiny_gguf.make_pair(tmp_path_factory.mktemp("vlm") / "idefics3", "idefics3")


@pytest.fixture
def indexed(tmp_path, photos, tiny_encoder, capsys):
    lib = tmp_path / "lib"
    assert main(["index", str(photos), "--library", str(lib), "--encoder", str(tiny_encoder)]) == 0
    capsys.readouterr()
    return lib


def _search(capsys, lib, query, *extra):
    code = main(["search", str(query), "--library", str(lib), "-k", "5", "--json", "--threads", "1", *extra])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)["results"]


def test_search_rerank_fuses_scores_and_stores_visual_tokens(indexed, photos, vlm, capsys):
    model, mmproj = vlm
    query = photos / "a" / "img03.jpg"
    plain = _search(capsys, indexed, query)
    rr = _search(capsys, indexed, query, "--rerank", "--vlm", str(model), "--mmproj", str(mmproj))
    assert {r["path"] for r in rr} == {r["path"] for r in plain}  # re-ranking re-orders the same top-k
    for r in rr:
        assert 0.0 <= r["mllm"] <= 1.0
        assert r["final"] == pytest.approx(0.5 * r["first_stage"] + 0.5 * r["mllm"], abs=1e-6)
        assert r["score"] == r["final"]
    assert [r["final"] for r in rr] == sorted((r["final"] for r in rr), reverse=True)
    stores = list(indexed.glob("tokens-*.sqlite"))
    assert len(stores) == 1  # candidates encoded on the fly were stored for next time

    again = _search(capsys, indexed, query, "--rerank", "--vlm", str(model), "--mmproj", str(mmproj))
    assert [(r["path"], r["mllm"]) for r in again] == [(r["path"], pytest.approx(r["mllm"], abs=2e-3)) for r in rr]

    lam1 = _search(capsys, indexed, query, "--rerank", "--lambda", "1", "--vlm", str(model), "--mmproj", str(mmproj))
    assert [r["path"] for r in lam1] == [r["path"] for r in plain]  # λ = 1 is the first stage alone


def test_encode_tokens_fills_the_store_then_reranking_uses_it(indexed, photos, vlm, capsys):
    model, mmproj = vlm
    code = main(["encode-tokens", "--library", str(indexed), "--vlm", str(model), "--mmproj", str(mmproj),
                 "--threads", "1", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out) == {"visual_tokens_encoded": 13,
                                                                 "visual_tokens_stored": 13, "photos": 13}
    with Library(indexed) as lib:
        rr = open_reranker("mllm", lib, vlm=model, mmproj=mmproj, threads=1)
        try:
            hits = lib.search_vectors(lib.vector_of(1)[None], k=6)[0]
            cands = rr.candidates(hits)
            assert all(not callable(c) for c in cands)  # all served from the store: no vision encoder run
            from edgeret.decode import decode

            steps = list(run_query(hits, decode(hits[0].path), rr))
        finally:
            rr.close()
    assert len(steps) == 1 + len(hits)  # first stage, then one refinement per judged candidate
    assert steps[0][0].p_same is None and all(not math.isnan(r.p_same) for r in steps[-1])


def test_cancel_stops_between_candidates(indexed, photos, vlm):
    model, mmproj = vlm
    from edgeret.decode import decode

    with Library(indexed) as lib:
        rr = open_reranker("mllm", lib, vlm=model, mmproj=mmproj, threads=1)
        try:
            hits = lib.search_vectors(lib.vector_of(2)[None], k=8)[0]
            judged = []
            stop = lambda: len(judged) >= 3  # noqa: E731
            for results in run_query(hits, decode(hits[0].path), rr, cancel=stop):
                judged = [r for r in results if r.p_same is not None]
        finally:
            rr.close()
    assert len(judged) == 3


def test_mismatched_or_missing_reranker_is_a_clear_error(indexed, photos, vlm, capsys, tmp_path):
    model, mmproj = vlm
    code = main(["search", str(photos / "a" / "img00.jpg"), "--library", str(indexed), "--rerank",
                 "--vlm", str(model), "--mmproj", str(tmp_path / "missing.gguf")])
    err = capsys.readouterr().err
    assert code != 0 and "missing.gguf" in err and "Traceback" not in err
    code = main(["search", str(photos / "a" / "img00.jpg"), "--library", str(indexed), "--rerank"])
    err = capsys.readouterr().err
    assert code == 7 and "models pull" in err  # the default re-ranker is not installed: say how to get it
