"""Text -> image search with a generated CLIP-style pair: real onnxruntime, real tokenizers, real library."""

import json
import shutil

import numpy as np
import pytest

from edgeret.errors import EncoderMismatch, UsageError
from edgeret.library import Library
from edgeret.testing import tiny_text
from edgeret.text import TextEncoder, check_pairing, load_text_encoder, search_text, text_towers_for

COLOURS = tiny_text.PHOTO_COLOURS


@pytest.fixture(scope="module")
def text_enc(towers):
    return TextEncoder(towers[1], threads=1)


@pytest.fixture(scope="module")
def colour_library(tmp_path_factory, towers):
    """A library of six mostly-one-colour photos, indexed with the image tower that pairs with the text tower."""
    base = tmp_path_factory.mktemp("colours")
    tiny_text.write_colour_photos(base / "photos")
    lib = Library(base / "lib", writable=True)
    lib.index([base / "photos"], encoder_spec=str(towers[0]), threads=1)
    yield lib
    lib.close()


def test_tokenizer_pads_and_truncates_to_the_context_keeping_eot(text_enc):
    tok = text_enc.tokenizer
    eot, bos = tok.token_to_id(tiny_text.EOT), tok.token_to_id(tiny_text.BOS)
    ids = text_enc.tokenize(["a photo of a red bicycle", " ".join(["red"] * 200)])
    assert ids.shape == (2, 77) and ids.dtype == np.int32  # the model's input type
    words = [tok.token_to_id(w) for w in ["a", "photo", "of", "a", "red", "bicycle"]]
    assert ids[0, :8].tolist() == [bos, *words, eot]
    assert (ids[0, 8:] == eot).all()  # padded with EOT, as the CLIP exports expect
    assert ids[1, 0] == bos and ids[1, 76] == eot and int(ids[1].argmax()) == 76  # truncated, EOT kept last


def test_encoding_matches_the_reference_and_both_pooling_styles(towers, text_enc, tmp_path):
    tok = text_enc.tokenizer
    table = tiny_text.token_table(tok)
    proj = tiny_text.projection()
    texts = ["a RED   bicycle", "the blue car", "zebra"]  # case and spacing are normalised; unknown word -> unk
    got = text_enc.encode(texts)
    ids = [tok.encode(" ".join(t.split())).ids for t in texts]
    ref = np.stack([table[i[: i.index(tok.token_to_id(tiny_text.EOT)) + 1]].sum(0) @ proj for i in ids])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(text_enc.encode(["a red bicycle"]), got[:1], atol=1e-6)
    # an export without pooling: the encoder pools at the EOT position itself and gets the same vectors
    _, seq_folder = tiny_text.write(tmp_path, output="sequence")
    np.testing.assert_allclose(TextEncoder(seq_folder, threads=1).encode(texts), got, atol=1e-5)
    assert text_enc.dim == tiny_text.DIM


def test_search_text_ranks_the_described_colour_first(colour_library, text_enc):
    for name in COLOURS:
        hits = search_text(colour_library, text_enc, f"a photo of a {name} thing", k=3)
        assert hits[0].path.endswith(f"/{name}.png"), (name, hits)
        assert hits[0].score > hits[1].score
    # the same ranking the library gives for the text vector directly
    vec = text_enc.encode(["yellow"])
    assert [h.key for h in search_text(colour_library, text_enc, "yellow", 6)] == [
        h.key for h in colour_library.search_vectors(vec, 6)[0]
    ]
    with pytest.raises(UsageError):
        search_text(colour_library, text_enc, "   ", 3)


def test_a_text_tower_of_another_space_is_refused(tmp_path, towers, text_enc, tiny_encoder, photos):
    with Library(tmp_path / "other", writable=True) as lib:
        lib.index([photos], encoder_spec=str(tiny_encoder), threads=1)
        with pytest.raises(EncoderMismatch, match="pairs with tiny-clip-image"):
            search_text(lib, text_enc, "red", 3)
        # without a declared pairing the dimension still has to match (16-d text vs 32-d images)
        undeclared = tmp_path / "undeclared"
        shutil.copytree(towers[1], undeclared)
        settings = json.loads((undeclared / "text.json").read_text())
        del settings["pairs_with"]
        (undeclared / "text.json").write_text(json.dumps(settings))
        with pytest.raises(EncoderMismatch, match="16-d"):
            check_pairing(lib, TextEncoder(undeclared, threads=1))


def test_text_towers_pair_by_the_registrys_pairs_with():
    names = lambda image: [m.name for m in text_towers_for(image)]  # noqa: E731
    assert names("clip-vit-b32") == names("clip-vit-b32-int8") == ["clip-vit-b32-text"]
    assert names("mnv2-gem") == names(None) == []


def test_load_text_encoder_by_folder_and_refusal_without_a_registered_pair(colour_library, towers):
    enc = load_text_encoder(colour_library, str(towers[1]), threads=1)
    assert enc.pairs_with == ("tiny-clip-image",)
    with pytest.raises(UsageError, match="no registered text encoder"):
        load_text_encoder(colour_library, None)


def test_text_query_through_the_session(colour_library, towers):
    from edgeret.session import Query, Session

    with Session(colour_library.path, threads=1, text_encoder=str(towers[1])) as session:
        hits = session.first_stage(Query(text="something green"), 2)
        assert len(hits) == 2 and hits[0].path.endswith("/green.png")
        *_, results = session.search(Query(text="something green"), 2)
        assert [r.path for r in results] == [h.path for h in hits]


def test_search_text_from_the_command_line(colour_library, towers, capsys):
    import json

    from edgeret.cli import main

    code = main(["search", "--text", "a blue thing", "--text-encoder", str(towers[1]), "-k", "3",
                 "--library", str(colour_library.path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["query"] == "a blue thing" and out["results"][0]["path"].endswith("/blue.png")
    assert main(["search", "--text", "x", "--reranker", "sv", "--library", str(colour_library.path)]) == 2
    assert main(["search", "--text", "x", "y.jpg", "--library", str(colour_library.path)]) == 2


def test_text_query_re_ranked_by_the_mllm(colour_library, towers, tiny_models, capsys):
    """Text queries: the MLLM sees the description, then each candidate photo, and says whether it matches."""
    from edgeret.cli import main

    model, mmproj = tiny_models["idefics3"]
    args = ["search", "--text", "a blue thing", "--text-encoder", str(towers[1]), "-k", "4", "--library",
            str(colour_library.path), "--rerank", "--vlm", str(model), "--mmproj", str(mmproj), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert len(rows) == 4 and all(r["reranker"] == "mllm" and 0.0 <= r["mllm"] <= 1.0 for r in rows)
    assert all(r["final"] == pytest.approx(0.5 * r["first_stage"] + 0.5 * r["mllm"]) for r in rows)
    assert [r["final"] for r in rows] == sorted((r["final"] for r in rows), reverse=True)
    assert main([*args, "--lambda", "1"]) == 0  # λ = 1: the text ranking itself
    only_text = json.loads(capsys.readouterr().out)["results"]
    assert [r["path"] for r in only_text] == [r["path"] for r in sorted(rows, key=lambda r: -r["first_stage"])]
