"""Deterministic tiny ONNX image encoders for tests, built with the `onnx` package (random weights, real graph).

    python scripts/tiny_onnx.py OUT_DIR [--kind embedding|feature_map]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9  # the newest IR that every supported onnxruntime reads


def _weights(rng, shape, fan_in):
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def build(kind: str = "embedding", dim: int = 32, seed: int = 0) -> onnx.ModelProto:
    """A patchify-conv network: (N,3,H,W) -> (N,dim) embeddings or an (N,dim,H/16,W/16) feature map."""
    rng = np.random.default_rng(seed)
    w1 = _weights(rng, (16, 3, 8, 8), 3 * 64)
    w2 = _weights(rng, (dim, 16, 2, 2), 16 * 4)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    nodes = [
        helper.make_node("Conv", ["pixels", "w1"], ["c1"], strides=[8, 8]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2]),
    ]
    if kind == "feature_map":
        nodes.append(helper.make_node("Relu", ["c2"], ["features"]))
        out = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", dim, "h", "w"])
    else:
        w3 = _weights(rng, (dim, dim), dim)
        inits.append(numpy_helper.from_array(w3, "w3"))
        nodes += [
            helper.make_node("GlobalAveragePool", ["c2"], ["gap"]),
            helper.make_node("Flatten", ["gap"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w3"], ["embedding"]),
        ]
        out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])
    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, "H", "W"])
    graph = helper.make_graph(nodes, f"tiny_{kind}", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeret-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def preprocess_for(kind: str) -> dict:
    if kind == "feature_map":
        return {
            "input_size": 128, "resize": "longest_edge", "multiple_of": 16, "interpolation": "bilinear",
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "layout": "NCHW",
            "output": "feature_map", "pooling": "gem", "gem_p": 3.0,
        }
    return {
        "input_size": 64, "resize": "shortest_edge_center_crop", "interpolation": "bicubic",
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
        "layout": "NCHW", "output": "embedding",
    }


def write(out_dir: Path, kind: str = "embedding", seed: int = 0) -> Path:
    """Write an encoder folder (model.onnx + preprocess.json) and return it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(build(kind, seed=seed).SerializeToString())
    (out_dir / "preprocess.json").write_text(json.dumps(preprocess_for(kind), indent=2))
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """The command line: write the models into OUT_DIR and print their paths."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--kind", choices=["embedding", "feature_map"], default="embedding")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(write(args.out_dir, args.kind, args.seed))


if __name__ == "__main__":
    main()
