"""check_gguf / check_onnx: valid tiny files pass; truncated, empty, random and impostor files are refused."""

from __future__ import annotations

import os
import random
import struct

import pytest

from edgeret.errors import ModelError
from edgeret.modelfiles import check_gguf, check_onnx
from tests.helpers.hub import tiny_gguf


@pytest.fixture
def gguf_bytes(tmp_path) -> bytes:
    return tiny_gguf(tmp_path / "ok.gguf", "llama", 4_000).read_bytes()


def write(tmp_path, data: bytes, name="x.gguf"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_valid_gguf_header_is_reported(tmp_path):
    info = check_gguf(tiny_gguf(tmp_path / "m.gguf", "clip", 4_000))
    assert info["architecture"] == "clip"
    assert info["version"] == 3 and info["tensor_count"] == 1
    assert info["data_end"] == info["size"] == (tmp_path / "m.gguf").stat().st_size


def test_gguf_reports_projector_type(tmp_path):
    import gguf
    import numpy as np

    p = tmp_path / "mmproj.gguf"
    w = gguf.GGUFWriter(str(p), "clip")
    w.add_string("clip.projector_type", "idefics3")
    w.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
    w.add_tensor("v.patch_embd.weight", np.zeros((4, 32), np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert check_gguf(p)["projector_type"] == "idefics3"


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (0, "empty"),
        (10, "truncated"),
        (30, "truncated or corrupt"),
        (90, "truncated or corrupt"),
        (-1, "truncated"),
        (-4000, "truncated"),
    ],
)
def test_truncated_gguf_is_refused(tmp_path, gguf_bytes, cut, message):
    data = gguf_bytes[:cut] if cut > 0 else (b"" if cut == 0 else gguf_bytes[:cut])
    with pytest.raises(ModelError, match=message):
        check_gguf(write(tmp_path, data))


def test_random_bytes_are_refused(tmp_path):
    with pytest.raises(ModelError, match="not a GGUF file"):
        check_gguf(write(tmp_path, os.urandom(100_000)))


def test_gguf_magic_with_garbage_is_refused(tmp_path):
    with pytest.raises(ModelError, match="unsupported version"):
        check_gguf(write(tmp_path, b"GGUF" + b"\xff" * 1000))
    huge_counts = b"GGUF" + struct.pack("<IQQ", 3, 2**60, 2**60) + os.urandom(1000)
    with pytest.raises(ModelError, match="cannot fit"):
        check_gguf(write(tmp_path, huge_counts))


def test_impostors_are_named(tmp_path):
    lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
    with pytest.raises(ModelError, match="Git LFS pointer"):
        check_gguf(write(tmp_path, lfs))
    with pytest.raises(ModelError, match="HTML page"):
        check_onnx(write(tmp_path, b"<!DOCTYPE html><html>login</html>" * 10, "m.onnx"))


def test_missing_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        check_gguf(tmp_path / "nope.gguf")


def test_header_bit_flips_never_escape_as_other_exceptions(tmp_path, gguf_bytes):
    """Fuzz: any damage to the header is either harmless or a ModelError, never a crash of another kind."""
    rng = random.Random(7)
    p = tmp_path / "fuzz.gguf"
    refused = 0
    for _ in range(400):
        b = bytearray(gguf_bytes)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(4, 300)] = rng.randrange(256)
        p.write_bytes(bytes(b))
        try:
            check_gguf(p)
        except ModelError:
            refused += 1
    assert refused > 100  # most header damage is caught; the rest hits string bytes and is harmless


def test_onnx_checks(tmp_path):
    onnx = pytest.importorskip("onnx")
    from edgeret.testing import tiny_onnx

    good = tmp_path / "model.onnx"
    onnx.save(tiny_onnx.build("embedding"), str(good))
    info = check_onnx(good)
    assert info["ir_version"] and info["size"] == good.stat().st_size
    data = good.read_bytes()
    for bad, message in [(b"", "empty"), (data[:200], "truncated"), (os.urandom(5000), "not a valid ONNX")]:
        with pytest.raises(ModelError, match=message):
            check_onnx(write(tmp_path, bad, "bad.onnx"))
