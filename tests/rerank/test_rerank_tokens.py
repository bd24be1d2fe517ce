"""The visual-token store: round trips, model binding, codecs and their measured effect on scores."""

import numpy as np
import pytest

from edgeret.errors import EncoderMismatch, LibraryError
from edgeret.rerank.mllm import VisualTokens
from edgeret.rerank.tokens import CODECS, TokenStore, pool2x2
from tests.helpers.rerank import CANDIDATES, QUERY


def _vt(seed=0, n=16, d=8, chunks=2):
    rng = np.random.default_rng(seed)
    return VisualTokens([rng.normal(0, 2, (n, d)).astype(np.float32) for _ in range(chunks)], (40, 30),
                        [(4, 4)] * chunks)


def test_f32_round_trip_is_exact_and_persistent(tmp_path):
    vt = _vt()
    with TokenStore(tmp_path / "t.sqlite", "m1", codec="f32") as s:
        s.put(7, vt)
        assert 7 in s and 8 not in s and len(s) == 1
    with TokenStore(tmp_path / "t.sqlite", "m1", codec="f32") as s:
        got = s.get(7)
        assert got.size == (40, 30) and got.grids == [(4, 4), (4, 4)] and got.pool == 1
        for a, b in zip(got.chunks, vt.chunks, strict=True):
            assert a.dtype == np.float32 and np.array_equal(a, b)
        assert s.get(8) is None


@pytest.mark.parametrize("codec, tol, ratio", [("f16", 2e-3, 0.5), ("int8", 0.05, 0.25 + 1 / 8)])
def test_lossy_codecs_bound_their_error_and_size(tmp_path, codec, tol, ratio):
    vt = _vt()
    with TokenStore(tmp_path / "a.sqlite", "m", codec="f32") as ref, \
            TokenStore(tmp_path / "b.sqlite", "m", codec=codec) as s:
        ref.put(1, vt)
        s.put(1, vt)
        got = s.get(1)
        assert s.nbytes() == pytest.approx(ref.nbytes() * ratio)
    for a, b in zip(got.chunks, vt.chunks, strict=True):
        rel = np.abs(a - b).max() / np.abs(b).max()
        assert 0 < rel <= tol


def test_pool2_halves_each_grid_side(tmp_path):
    vt = _vt()
    with TokenStore(tmp_path / "p.sqlite", "m", codec="pool2") as s:
        s.put(1, vt)
        got = s.get(1)
    assert got.pool == 2 and got.grids == [(2, 2), (2, 2)] and got.chunks[0].shape == (4, 8)
    expect = vt.chunks[0].reshape(2, 2, 2, 2, 8).mean(axis=(1, 3)).reshape(4, 8)
    assert np.allclose(got.chunks[0], expect, atol=1e-2)
    odd = pool2x2(VisualTokens([np.ones((15, 3), np.float32)], (1, 1), [(3, 5)]))
    assert odd.grids == [(2, 3)] and np.allclose(odd.chunks[0], 1.0)


def test_put_replaces_and_delete_removes(tmp_path):
    with TokenStore(tmp_path / "t.sqlite", "m") as s:
        s.put(1, _vt(0))
        s.put(1, _vt(1))
        s.put(2, _vt(2))
        assert s.keys() == {1, 2}
        assert np.allclose(s.get(1).chunks[0], _vt(1).chunks[0], atol=1e-2)
        s.delete(1)
        assert s.keys() == {2}


def test_store_for_another_model_is_refused(tmp_path):
    TokenStore(tmp_path / "t.sqlite", "model-a").close()
    with pytest.raises(EncoderMismatch, match="model-a"):
        TokenStore(tmp_path / "t.sqlite", "model-b")


def test_unknown_codec_and_broken_file(tmp_path):
    with pytest.raises(ValueError, match="codec"):
        TokenStore(tmp_path / "t.sqlite", "m", codec="bf8")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(LibraryError, match="cannot be opened"):
        TokenStore(bad, "m")


def test_stored_tokens_score_like_on_the_fly_encoding(reranker, tmp_path):
    encoded = {}
    loaders = [lambda c=c: c for c in CANDIDATES]
    live = list(reranker.score(QUERY, loaders, on_encoded=lambda i, vt: encoded.__setitem__(i, vt)))
    assert sorted(encoded) == list(range(len(CANDIDATES)))
    with TokenStore(tmp_path / "t.sqlite", reranker.model_id, codec="f32") as store:
        for i, vt in encoded.items():
            store.put(i, vt)
        stored = [store.get(i) for i in range(len(CANDIDATES))]
    assert list(reranker.score(QUERY, stored)) == live


def test_compressed_storage_effect_on_scores(reranker, tmp_path):
    """Measure (and bound) how much each codec moves P(same) against exact f32 tokens."""
    tokens = [reranker.encode(c) for c in CANDIDATES]
    exact = np.array([p for _, p in reranker.score(QUERY, tokens)])
    report = {}
    for codec in CODECS:
        with TokenStore(tmp_path / f"{codec}.sqlite", reranker.model_id, codec=codec) as store:
            for i, vt in enumerate(tokens):
                store.put(i, vt)
            got = np.array([p for _, p in reranker.score(QUERY, [store.get(i) for i in range(len(tokens))])])
            report[codec] = (float(np.abs(got - exact).max()), store.nbytes())
        assert np.all((got >= 0) & (got <= 1))
    print(f"\n{reranker.projector}: codec -> (max |dP| vs f32, payload bytes for {len(tokens)} images): {report}")
    assert report["f32"][0] == 0.0
    assert report["f16"][0] < 1e-3
    assert report["int8"][0] < 2e-2
    assert report["pool2"][1] < report["f16"][1] / 3
