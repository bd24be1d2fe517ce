"""Export a CLIP image tower (and text tower) to edgeret's encoder folder format, with a parity check against torch.

    python scripts/export_clip_onnx.py hf:openai/clip-vit-base-patch32 OUT [--text] [--int8]
    python scripts/export_clip_onnx.py open_clip:ViT-B-32/openai OUT [--text] [--int8]
    python scripts/export_clip_onnx.py --quantize-only ENCODER_FOLDER OUT     # int8 copy of an existing export

Writes OUT/image/{model.onnx,preprocess.json}, optionally OUT/text/{model.onnx,text.json,tokenizer.json} and
OUT/image-int8/ (dynamic int8 quantisation of MatMul/Gemm only: quantising convolutions makes CNNs slower).
Outputs are L2-normalised embeddings; the batch axis is dynamic. Needs torch (optional extra) and transformers or
open_clip; prints a JSON report with the parity figures and exits non-zero when parity fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

OPSET = 18
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
PARITY_ATOL = 1e-4
INT8_MIN_COSINE = 0.97


# ------------------------------------------------------------------------------------------------ towers


def _torch():
    import torch

    # torch >= 2.13: the legacy exporter cannot trace the fused attention fast path (aten::_native_multi_head_attention)
    torch.backends.mha.set_fastpath_enabled(False)
    return torch


class Towers:
    """Image and text towers as torch modules returning L2-normalised embeddings, plus their preprocessing."""

    def __init__(self, image, text, preprocess: dict, context_length: int, vocab_size: int, tokenizer=None):
        self.image, self.text, self.preprocess = image, text, preprocess
        self.context_length, self.vocab_size, self.tokenizer = context_length, vocab_size, tokenizer


def _normalised(torch, fn):
    class Tower(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.nn.functional.normalize(fn(self.inner, x), dim=-1)

    return Tower


def _hf_preprocess(processor, image_size: int) -> dict:
    size = image_size
    mean, std, bicubic = OPENAI_MEAN, OPENAI_STD, True
    if processor is not None:
        crop = getattr(processor, "crop_size", None) or {}
        size = crop.get("height", size) if isinstance(crop, dict) else size
        mean = list(getattr(processor, "image_mean", mean))
        std = list(getattr(processor, "image_std", std))
        bicubic = int(getattr(processor, "resample", 3)) == 3
    return _preprocess(size, mean, std, "bicubic" if bicubic else "bilinear")


def _preprocess(size: int, mean, std, interpolation: str) -> dict:
    return {
        "input_size": int(size),
        "resize": "shortest_edge_center_crop",
        "interpolation": interpolation,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "layout": "NCHW",
        "output": "embedding",
    }


def _features(out):
    """transformers >= 5 wraps projected features in a model output (pooler_output); 4.x returns the tensor."""
    return out if hasattr(out, "dim") else out.pooler_output


def from_transformers(model) -> Towers:
    """Towers of a transformers CLIPModel (a loaded model, e.g. a tiny randomly initialised one in tests)."""
    torch = _torch()
    cfg = model.config
    image_tower = _normalised(torch, lambda m, x: _features(m.get_image_features(pixel_values=x)))(model).eval()
    text_tower = _normalised(torch, lambda m, x: _features(m.get_text_features(input_ids=x)))(model).eval()
    return Towers(
        image_tower,
        text_tower,
        _hf_preprocess(None, cfg.vision_config.image_size),
        cfg.text_config.max_position_embeddings,
        cfg.text_config.vocab_size,
    )


def load_transformers(name: str) -> Towers:
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(name).eval()
    towers = from_transformers(model)
    processor = CLIPProcessor.from_pretrained(name)
    towers.preprocess = _hf_preprocess(processor.image_processor, model.config.vision_config.image_size)
    towers.tokenizer = processor.tokenizer
    return towers


def load_open_clip(spec: str) -> Towers:
    torch = _torch()
    import open_clip

    arch, _, pretrained = spec.partition("/")
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained or None)
    model.eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = getattr(model.visual, "image_mean", None) or OPENAI_MEAN
    std = getattr(model.visual, "image_std", None) or OPENAI_STD
    image_tower = _normalised(torch, lambda m, x: m.encode_image(x))(model).eval()
    text_tower = _normalised(torch, lambda m, x: m.encode_text(x))(model).eval()
    return Towers(
        image_tower,
        text_tower,
        _preprocess(size, mean, std, "bicubic"),
        model.context_length,
        model.vocab_size,
        open_clip.get_tokenizer(arch),
    )


# ------------------------------------------------------------------------------------------------ export


def _export(module, example, path: Path, input_name: str) -> None:
    torch = _torch()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            module, (example,), str(path), opset_version=OPSET, dynamo=False,
            input_names=[input_name], output_names=["embedding"],
            dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
        )  # fmt: skip


def _onnx_run(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {name: x})[0]


def _parity(module, path: Path, name: str, inputs: list[np.ndarray]) -> float:
    """Largest |onnx - torch| over several batch sizes (proves the dynamic batch axis too)."""
    torch = _torch()
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        got = _onnx_run(path, name, x)
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def _pixels(rng, size: int, batch: int) -> np.ndarray:
    return rng.standard_normal((batch, 3, size, size)).astype(np.float32)


def _tokens(rng, towers: Towers, batch: int) -> np.ndarray:
    ids = rng.integers(1, towers.vocab_size - 1, (batch, towers.context_length)).astype(np.int64)
    ids[:, -1] = towers.vocab_size - 1  # an end token with the largest id, which CLIP pools at
    return ids


def export_image(towers: Towers, out: Path, rng) -> dict:
    size = towers.preprocess["input_size"]
    model = out / "model.onnx"
    _export(towers.image, _tensor(_pixels(rng, size, 2)), model, "pixel_values")
    pre = dict(towers.preprocess, input_name="pixel_values", output_name="embedding")
    (out / "preprocess.json").write_text(json.dumps(pre, indent=2) + "\n", "utf-8")
    diff = _parity(towers.image, model, "pixel_values", [_pixels(rng, size, b) for b in (1, 3)])
    return {"folder": str(out), "max_abs_diff": diff, "ok": diff <= PARITY_ATOL}


def export_text(towers: Towers, out: Path, rng) -> dict:
    model = out / "model.onnx"
    _export(towers.text, _tensor(_tokens(rng, towers, 2)), model, "input_ids")
    cfg = {"context_length": towers.context_length, "input_name": "input_ids", "output": "embedding"}
    if towers.tokenizer is not None and hasattr(towers.tokenizer, "backend_tokenizer"):
        towers.tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
        cfg["tokenizer"] = "tokenizer.json"
    (out / "text.json").write_text(json.dumps(cfg, indent=2) + "\n", "utf-8")
    diff = _parity(towers.text, model, "input_ids", [_tokens(rng, towers, b) for b in (1, 3)])
    return {"folder": str(out), "max_abs_diff": diff, "ok": diff <= PARITY_ATOL}


def _tensor(x: np.ndarray):
    return _torch().from_numpy(x)


def quantize(src: Path, out: Path, rng=None) -> dict:
    """Int8 dynamic quantisation (QInt8 weights, MatMul/Gemm only) of an encoder folder, with cosine parity."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        str(src / "model.onnx"),
        str(out / "model.onnx"),
        op_types_to_quantize=["MatMul", "Gemm"],
        weight_type=QuantType.QInt8,
    )
    shutil.copy(src / "preprocess.json", out / "preprocess.json")
    pre = json.loads((src / "preprocess.json").read_text("utf-8"))
    name = pre.get("input_name") or _first_input(src / "model.onnx")
    x = _pixels(rng or np.random.default_rng(0), pre["input_size"], 4)
    a, b = _onnx_run(src / "model.onnx", name, x), _onnx_run(out / "model.onnx", name, x)
    cos = float(np.min(np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))))
    return {
        "folder": str(out),
        "min_cosine_vs_fp32": cos,
        "ok": cos >= INT8_MIN_COSINE,
        "bytes": (out / "model.onnx").stat().st_size,
    }


def _first_input(path: Path) -> str:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name


def export(towers: Towers, out: Path, text: bool = False, int8: bool = False, seed: int = 0) -> dict:
    """Export the towers under `out`; returns the report (each part has an `ok` flag)."""
    rng = np.random.default_rng(seed)
    report = {"opset": OPSET, "image": export_image(towers, out / "image", rng)}
    if text:
        report["text"] = export_text(towers, out / "text", rng)
    if int8:
        report["image_int8"] = quantize(out / "image", out / "image-int8", rng)
    report["ok"] = all(part["ok"] for part in report.values() if isinstance(part, dict))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "source", help="hf:NAME (transformers), open_clip:ARCH/PRETRAINED, or a folder with --quantize-only"
    )
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument("--text", action="store_true", help="also export the text tower")
    ap.add_argument("--int8", action="store_true", help="also write an int8 dynamic-quantised image tower")
    ap.add_argument("--quantize-only", action="store_true", help="source is an encoder folder: write its int8 copy")
    args = ap.parse_args(argv)
    if args.quantize_only:
        report = quantize(Path(args.source), args.out)
    else:
        kind, _, name = args.source.partition(":")
        loaders = {"hf": load_transformers, "open_clip": load_open_clip}
        if kind not in loaders or not name:
            ap.error("source must be hf:NAME or open_clip:ARCH/PRETRAINED")
        report = export(loaders[kind](name), args.out, text=args.text, int8=args.int8)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
