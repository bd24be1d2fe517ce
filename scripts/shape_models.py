"""Shape-faithful random-weight encoders for benchmarks: real layer sizes, so timings are real; scores are not.

    python scripts/shape_models.py OUT_DIR [--int8]     # writes a CLIP ViT-B/32 image tower encoder folder
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


class _Graph:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def w(self, *shape, scale=0.02, value=None) -> str:
        name = f"w{len(self.inits)}"
        arr = np.full(shape, value, np.float32) if value is not None else self.rng.standard_normal(shape) * scale
        self.inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def const(self, values, dtype=np.int64) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def op(self, kind: str, *inputs, **attrs) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def linear(self, x, d_in, d_out, bias=True):
        y = self.op("MatMul", x, self.w(d_in, d_out))
        return self.op("Add", y, self.w(d_out, value=0.0)) if bias else y

    def layer_norm(self, x, d):
        return self.op("LayerNormalization", x, self.w(d, value=1.0), self.w(d, value=0.0), axis=-1, epsilon=1e-5)


def _attention(g: _Graph, x, d: int, heads: int, tokens: int):
    hd = d // heads
    split = g.const([0, tokens, heads, hd])

    def proj():
        return g.op("Transpose", g.op("Reshape", g.linear(x, d, d), split), perm=[0, 2, 1, 3])

    q, k, v = proj(), proj(), proj()
    scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])), g.w(1, value=hd**-0.5))
    ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    merged = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), g.const([0, tokens, d]))
    return g.linear(merged, d, d)


def _quick_gelu(g: _Graph, x):
    return g.op("Mul", x, g.op("Sigmoid", g.op("Mul", x, g.w(1, value=1.702))))


def vit_image_tower(
    image_size=224, patch=32, width=768, layers=12, heads=12, mlp=3072, embed_dim=512, seed=0
) -> onnx.ModelProto:
    """An OpenAI-CLIP-style ViT image tower: (N,3,S,S) -> (N, embed_dim)."""
    g = _Graph(seed)
    grid = image_size // patch
    tokens = grid * grid + 1
    x = g.op("Conv", "pixels", g.w(width, 3, patch, patch), strides=[patch, patch])
    x = g.op("Transpose", g.op("Reshape", x, g.const([0, width, grid * grid])), perm=[0, 2, 1])
    cls = g.op("Expand", g.w(1, 1, width), g.op("Concat", g.op("Slice", g.op("Shape", x), g.const([0]),
                                                                 g.const([1])), g.const([1, width]), axis=0))
    x = g.op("Add", g.op("Concat", cls, x, axis=1), g.w(tokens, width))
    x = g.layer_norm(x, width)
    for _ in range(layers):
        x = g.op("Add", x, _attention(g, g.layer_norm(x, width), width, heads, tokens))
        h = g.linear(_quick_gelu(g, g.linear(g.layer_norm(x, width), width, mlp)), mlp, width)
        x = g.op("Add", x, h)
    first = g.op("Squeeze", g.op("Slice", x, g.const([0]), g.const([1]), g.const([1])), g.const([1]))
    g.linear(g.layer_norm(first, width), width, embed_dim, bias=False)
    g.nodes[-1].output[0] = "embedding"  # name the graph output after the final projection
    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, image_size, image_size])
    outp = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", embed_dim])
    graph = helper.make_graph(g.nodes, "vit_image_tower", [inp], [outp], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeret-bench")
    model.ir_version = 9
    return model


def vit_flops(image_size=224, patch=32, width=768, layers=12, mlp=3072, embed_dim=512) -> float:
    """Multiply-adds x2 of one image through the tower (matmuls only; the rest is noise)."""
    t = (image_size // patch) ** 2 + 1
    per_layer = 2 * t * (4 * width * width + 2 * width * mlp) + 2 * 2 * t * t * width
    return layers * per_layer + 2 * (t - 1) * 3 * patch * patch * width + 2 * width * embed_dim


def write_clip_b32(out_dir: Path, int8: bool = False) -> Path:
    """Write an encoder folder with a random ViT-B/32 tower and OpenAI preprocessing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = out_dir / "model.onnx"
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = out_dir / "fp32.onnx"
        onnx.save(vit_image_tower(), fp32)
        # MatMul only: quantised convolutions are slower than fp32 on CPU (notes/encoder-index.md)
        quantize_dynamic(fp32, model, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        fp32.unlink()
    else:
        onnx.save(vit_image_tower(), model)
    pre = {"input_size": 224, "resize": "shortest_edge_center_crop", "interpolation": "bicubic",
           "mean": OPENAI_MEAN, "std": OPENAI_STD, "layout": "NCHW", "output": "embedding"}
    (out_dir / "preprocess.json").write_text(json.dumps(pre, indent=2))
    return out_dir


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--int8", action="store_true")
    args = ap.parse_args()
    print(write_clip_b32(args.out_dir, args.int8))
