"""The vision tower's output: what edgeret stores equals libmtmd's own encode, with one tower run per SmolVLM photo.

The reference is scripts/reference_loop.py: a libmtmd context at its default settings (flash attention auto), fed
a photo file, every image chunk encoded by mtmd_encode_chunk.
"""

import numpy as np
import pytest
from llama_cpp import mtmd_cpp
from PIL import Image

from edgeret.rerank.mllm import MllmReranker
from tests.helpers.scripts import load_script


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)


@pytest.fixture(scope="module")
def pair(tiny_models):
    model, mmproj = tiny_models["idefics3"]
    loop = load_script("reference_loop").ReferenceLoop
    with MllmReranker(model, mmproj, threads=1) as r:
        ref = loop(model, mmproj, threads=1, image_tokens=r.image_tokens)
        yield r, ref
        ref.close()


def _libmtmd(ref, image: Image.Image, tmp_path) -> list[np.ndarray]:
    path = tmp_path / "photo.png"  # lossless: libmtmd gets exactly these pixels
    image.save(path)
    chunks, embds = ref.encode(path, "<__media__>")
    mtmd_cpp.mtmd_input_chunks_free(chunks)
    return [e for e in embds if e is not None]


@pytest.mark.parametrize("size", [(96, 72), (40, 90), (20, 15), (32, 32), (300, 40)])
def test_tokens_are_libmtmds_own_encode_of_the_image_it_is_given(pair, size, tmp_path):
    r, ref = pair
    image = _photo(*size)
    ours = r.encode(image)
    theirs = _libmtmd(ref, r.session.prepared(image), tmp_path)
    assert r.session.prepared(image).size == (32, 32)  # the tiny tower's tile
    assert len(ours.chunks) == len(theirs) == 2
    assert all(np.array_equal(a, b) for a, b in zip(ours.chunks, theirs, strict=True))  # bit for bit
    every = r.session.encode(image, every_chunk=True)
    assert all(np.array_equal(a, b) for a, b in zip(ours.chunks, every.chunks, strict=True))


def test_the_tower_runs_once_per_photo(pair, monkeypatch):
    r, _ = pair
    calls = []
    real = mtmd_cpp.mtmd_encode_chunk
    monkeypatch.setattr(mtmd_cpp, "mtmd_encode_chunk", lambda ctx, c: calls.append(1) or real(ctx, c))
    r.encode(_photo(96, 72))
    assert len(calls) == 1
    r.session.encode(_photo(96, 72), every_chunk=True)
    assert len(calls) == 3


def test_what_changes_against_the_photo_as_it_is(pair, tmp_path):
    """Chunk order is SmolVLM's: the tile, then the overview. The overview of a photo larger than the tile is
    bit-identical to libmtmd's from the photo itself (Pillow's bicubic filter is the one libmtmd ports); only the
    tile, which libmtmd letterboxes, now holds the squashed photo again."""
    r, ref = pair
    image = _photo(96, 72, seed=3)
    ours = r.encode(image)
    as_is = _libmtmd(ref, image, tmp_path)
    assert np.array_equal(ours.chunks[1], as_is[1])  # the overview
    assert not np.array_equal(ours.chunks[0], as_is[0])  # the letterboxed tile is gone
    assert np.array_equal(ours.chunks[0], ours.chunks[1])


def test_other_projectors_get_the_photo_as_it_is(tiny_models, tmp_path):
    model, mmproj = tiny_models["mlp"]
    image = _photo(96, 72)
    with MllmReranker(model, mmproj, threads=1) as r:
        assert r.square is None and r.session.prepared(image) is image
        ours = r.encode(image)
        ref = load_script("reference_loop").ReferenceLoop(model, mmproj, threads=1, image_tokens=None)
        try:
            theirs = _libmtmd(ref, image, tmp_path)
        finally:
            ref.close()
    assert all(np.array_equal(a, b) for a, b in zip(ours.chunks, theirs, strict=True))


def test_tiles_as_is_gives_libmtmds_own_input_under_another_model_id(tiny_models, tmp_path, monkeypatch):
    """EDGERET_VLM_TILES=as-is: the photo goes to libmtmd untouched (both chunks bit-identical to libmtmd's own encode
    of the photo), and its tokens are never mixed with the squashed recipe's."""
    model, mmproj = tiny_models["idefics3"]
    image = _photo(96, 72, seed=3)
    with MllmReranker(model, mmproj, threads=1) as square:
        square_id = square.model_id
    monkeypatch.setenv("EDGERET_VLM_TILES", "as-is")
    with MllmReranker(model, mmproj, threads=1) as r:
        assert r.square is None and r.model_id != square_id
        ours = r.encode(image)
        ref = load_script("reference_loop").ReferenceLoop(model, mmproj, threads=1, image_tokens=r.image_tokens)
        try:
            theirs = _libmtmd(ref, image, tmp_path)
        finally:
            ref.close()
    assert len(ours.chunks) == len(theirs) == 2
    assert all(np.array_equal(a, b) for a, b in zip(ours.chunks, theirs, strict=True))


def test_a_bad_tiles_setting_is_a_config_error(tiny_models, monkeypatch):
    from edgeret.errors import ConfigError

    model, mmproj = tiny_models["idefics3"]
    monkeypatch.setenv("EDGERET_VLM_TILES", "round")
    with pytest.raises(ConfigError, match="EDGERET_VLM_TILES"):
        MllmReranker(model, mmproj, threads=1)
