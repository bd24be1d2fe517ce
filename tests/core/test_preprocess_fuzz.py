"""Hostile or broken preprocess.json files are refused with a message; encoder failures never end a run badly."""

import json
import os
import time

import numpy as np
import pytest
from onnx import TensorProto, helper
from PIL import Image

from edgeret.encoders import ImageEncoder
from edgeret.errors import EdgeretError, EncoderFailed, ModelError
from edgeret.library import Library
from edgeret.preprocess import MAX_INPUT_SIZE
from edgeret.testing.photos import make_photo

HOSTILE = [0, -1, 1, 3, 7, 100000, 10**9, 1e9, 0.0, 0.5, 224.0, -3.5, float("nan"), float("inf"), 1e308, True, None,
           "", "224", "NCHW", "NHWC", "gem", "../../x", [], [0.5], [0.5, 0.5, 0.5], [0, 0, 0], ["a", "b", "c"],
           [1e9, 1e9, 1e9], {}, {"a": 1}, "bicubic", "longest_edge", "feature_map", "embedding", "mean", "pixels"]
KEYS = ["input_size", "resize", "multiple_of", "interpolation", "mean", "std", "layout", "output", "pooling", "gem_p",
        "input_name", "output_name"]


def _mutants(base: dict, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        spec = dict(base)
        for _ in range(int(rng.integers(1, 4))):
            key = KEYS[int(rng.integers(len(KEYS)))]
            if rng.random() < 0.1:
                spec.pop(key, None)
            else:
                spec[key] = HOSTILE[int(rng.integers(len(HOSTILE)))]
        yield spec


@pytest.mark.parametrize("which", ["tiny_encoder", "tiny_fmap_encoder"])
def test_mutated_specs_are_refused_or_give_unit_vectors(which, request, tmp_path):
    source = request.getfixturevalue(which)
    folder = tmp_path / "enc"
    folder.mkdir()
    os.link(source / "model.onnx", folder / "model.onnx")
    base = json.loads((source / "preprocess.json").read_text())
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), np.uint8))
    t0, outcomes = time.perf_counter(), {"refused": 0, "encoded": 0, "failed": 0}
    for spec in _mutants(base, 150, seed=len(which)):
        (folder / "preprocess.json").write_text(json.dumps(spec))
        try:
            enc = ImageEncoder(folder, threads=1)
        except ModelError as e:
            assert str(e), spec
            outcomes["refused"] += 1
            continue
        tensor = enc.preprocess(image)
        assert tensor.size <= 3 * MAX_INPUT_SIZE**2, spec  # no spec may ask for gigabytes per photo
        try:
            v = enc.encode([tensor])
        except EdgeretError:
            outcomes["failed"] += 1
            continue
        assert np.isfinite(v).all() and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4), spec
        outcomes["encoded"] += 1
    assert outcomes["refused"] and outcomes["encoded"], outcomes
    assert time.perf_counter() - t0 < 30


def test_an_encoder_failing_on_every_batch_stops_the_run_cleanly(tmp_path, tiny_encoder, photos):
    folder = tmp_path / "enc"
    folder.mkdir()
    os.link(tiny_encoder / "model.onnx", folder / "model.onnx")
    spec = {**json.loads((tiny_encoder / "preprocess.json").read_text()), "layout": "NHWC"}  # the model is NCHW
    (folder / "preprocess.json").write_text(json.dumps(spec))
    with Library(tmp_path / "lib", writable=True) as lib:
        with pytest.raises(EncoderFailed, match="the encoder failed"):
            lib.index([photos], encoder_spec=str(folder), threads=1)
        st = lib.status()
        assert (st["indexed"], st["failed"]) == (0, 0)  # nothing was wrongly recorded as a bad photo


def _log_encoder(folder):
    """An encoder whose vector is the mean log of the normalised pixels: NaN for any photo with dark pixels."""
    nodes = [helper.make_node("Log", ["pixels"], ["l"]), helper.make_node("GlobalAveragePool", ["l"], ["g"]),
             helper.make_node("Flatten", ["g"], ["embedding"])]
    graph = helper.make_graph(nodes, "log", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                                           ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    folder.mkdir()
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    (folder / "preprocess.json").write_text(json.dumps(
        {"input_size": 32, "resize": "stretch", "mean": [0.5] * 3, "std": [0.5] * 3, "output": "embedding"}))
    return folder


def test_nan_vectors_are_never_stored(tmp_path):
    enc = _log_encoder(tmp_path / "log-enc")
    root = tmp_path / "photos"
    root.mkdir()
    Image.new("RGB", (40, 40), (250, 200, 240)).save(root / "bright.png")
    make_photo(root / "dark.jpg", seed=3)
    with Library(tmp_path / "lib", writable=True) as lib:
        report = lib.index([root], encoder_spec=str(enc), threads=1)
        assert report.indexed == 1 and [os.path.basename(p) for p, _ in report.failed] == ["dark.jpg"]
        assert "not finite" in report.failed[0][1]
        ids, mat = lib.catalog.vectors()
        assert len(ids) == 1 and np.isfinite(mat).all()
        with pytest.raises(ModelError, match="not finite"):
            lib.search_vectors(np.full((1, 3), np.nan, np.float32))
