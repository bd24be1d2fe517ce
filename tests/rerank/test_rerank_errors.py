"""Bad inputs get clear edgeret errors, never a crash inside llama.cpp; scoring can be cancelled."""

import math
import shutil

import pytest

from edgeret.errors import DecodeError, EdgeretError, ModelError, ModelMissing
from edgeret.rerank.mllm import MllmReranker
from edgeret.testing import tiny_gguf
from tests.helpers.rerank import CANDIDATES, QUERY


def test_missing_files_are_model_missing(tiny_models, tmp_path):
    model, mmproj = tiny_models["mlp"]
    with pytest.raises(ModelMissing, match="mmproj"):
        MllmReranker(model, tmp_path / "nope.gguf")
    with pytest.raises(ModelMissing, match="model"):
        MllmReranker(tmp_path / "nope.gguf", mmproj)


def test_mismatched_embedding_sizes_are_refused(tiny_models, tmp_path):
    model, _ = tiny_models["mlp"]
    _, wrong = tiny_gguf.make_pair(tmp_path, "mlp", text_embd=48)
    with pytest.raises(ModelError, match="embedding size"):
        MllmReranker(model, wrong)


def test_swapped_files_are_refused(tiny_models):
    model, mmproj = tiny_models["idefics3"]
    with pytest.raises(ModelError, match="mmproj"):
        MllmReranker(mmproj, model)
    with pytest.raises(ModelError, match="not a multimodal projector"):
        MllmReranker(model, model)


@pytest.mark.parametrize("which", ["model", "mmproj"])
def test_truncated_gguf_is_refused_before_loading(tiny_models, tmp_path, which):
    """A cut-off download must raise ModelError from the header check, not reach llama.cpp (which aborts)."""
    model, mmproj = tiny_models["mlp"]
    src = model if which == "model" else mmproj
    cut = tmp_path / f"cut-{src.name}"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    args = (cut, mmproj) if which == "model" else (model, cut)
    with pytest.raises(ModelError, match="truncated"):
        MllmReranker(*args)


def test_random_bytes_are_not_a_model(tiny_models, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(ModelError):
        MllmReranker(junk, tiny_models["mlp"][1])


def test_unknown_prompt_is_refused(tiny_models):
    with pytest.raises(ValueError, match="object01"):
        MllmReranker(*tiny_models["mlp"], prompt="nonsense")


def test_candidate_that_fails_to_decode_yields_nan_and_the_run_goes_on(reranker, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")

    def bad_loader():
        from PIL import Image

        return Image.open(broken).convert("RGB")

    def decode_error():
        raise DecodeError("unsupported RAW variant")

    out = list(reranker.score(QUERY, [bad_loader, lambda: CANDIDATES[0], decode_error, lambda: CANDIDATES[1]]))
    assert [i for i, _ in out] == [0, 1, 2, 3]
    assert math.isnan(out[0][1]) and math.isnan(out[2][1])
    assert 0 <= out[1][1] <= 1 and 0 <= out[3][1] <= 1


def test_cancel_stops_between_candidates(reranker):
    loaded = []

    def loader(i):
        def load():
            loaded.append(i)
            return CANDIDATES[i]
        return load

    results = []
    gen = reranker.score(QUERY, [loader(i) for i in range(len(CANDIDATES))], cancel=lambda: len(results) >= 2)
    for item in gen:
        results.append(item)
    assert [i for i, _ in results] == [0, 1]
    assert loaded == [0, 1]  # the third candidate was never even decoded


def test_scores_stream_one_at_a_time(reranker):
    loaded = []
    gen = reranker.score(QUERY, [lambda i=i: loaded.append(i) or CANDIDATES[i] for i in range(3)])
    assert next(gen)[0] == 0 and loaded == [0]
    gen.close()


def test_interleaved_runs_are_refused(reranker):
    tokens = [reranker.encode(c) for c in CANDIDATES[:2]]
    first = reranker.score(QUERY, tokens)
    next(first)
    list(reranker.score(QUERY, tokens))  # a second run takes over the KV cache
    with pytest.raises(EdgeretError, match="another scoring run"):
        next(first)


def test_closed_reranker_refuses_work(tiny_models):
    r = MllmReranker(*tiny_models["mlp"], threads=1)
    r.close()
    r.close()  # twice is fine
    with pytest.raises(EdgeretError, match="closed"):
        r.encode(QUERY)


def test_tokens_from_another_layout_are_refused(tiny_models):
    with MllmReranker(*tiny_models["mlp"], threads=1) as mlp, \
            MllmReranker(*tiny_models["idefics3"], threads=1) as idf:
        foreign = idf.encode(CANDIDATES[0])
        with pytest.raises(ModelError, match="do not fit|chunks"):
            list(mlp.score(QUERY, [foreign]))


def test_yesno_prompt_merges_answer_variants(tiny_models):
    import numpy as np

    with MllmReranker(*tiny_models["mlp"], threads=1, prompt="yesno") as r:
        pos, neg = r._layout.answers
        assert len(pos) >= 3 and len(neg) >= 3  # "Yes", "ĠYes", "yes", ... all count
        logits = r.naive_logits(QUERY, CANDIDATES[0])
        lp, ln = np.logaddexp.reduce(logits[pos]), np.logaddexp.reduce(logits[neg])
        assert r.p_same(logits) == pytest.approx(np.exp(lp) / (np.exp(lp) + np.exp(ln)), rel=1e-6)


def test_default_image_cap_keeps_one_full_tile(tiny_models):
    shape = tiny_gguf.SHAPES["tiny"][1]
    with MllmReranker(*tiny_models["idefics3"], threads=1) as r:
        assert r.image_tokens == (shape.image_size // shape.patch_size // shape.scale_factor) ** 2
        assert all(len(c) == r.image_tokens for c in r.encode(CANDIDATES[2]).chunks)
    with MllmReranker(*tiny_models["idefics3"], threads=1, image_tokens=64) as big, \
            MllmReranker(*tiny_models["idefics3"], threads=1) as small:
        assert big.model_id != small.model_id  # the cap changes the tokens, so stores must not mix
        assert big.encode(CANDIDATES[2]).n_tokens > small.encode(CANDIDATES[2]).n_tokens


def test_models_can_be_moved_without_changing_the_id(tiny_models, tmp_path):
    model, mmproj = tiny_models["mlp"]
    moved = [shutil.copy(p, tmp_path / p.name) for p in (model, mmproj)]
    with MllmReranker(model, mmproj, threads=1) as a, MllmReranker(*moved, threads=1) as b:
        assert a.model_id == b.model_id


def test_an_empty_text_query_is_refused(tiny_models):
    with MllmReranker(*tiny_models["mlp"], threads=1) as r, pytest.raises(ModelError, match="empty"):
        list(r.score(" \n ", [r.encode(CANDIDATES[0])]))
