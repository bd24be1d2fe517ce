"""Deterministic tiny towers for tests: a CLIP-style text tower + tokenizer.json, the image tower it pairs with, and
a thumbnail image tower for near-duplicate tests.

    python scripts/tiny_text.py OUT_DIR [--output embedding|sequence]

Writes OUT_DIR/tiny-clip-image (model.onnx + preprocess.json) and OUT_DIR/tiny-clip-text (model.onnx +
tokenizer.json + text.json). Both towers share one projection A (3 x DIM) from a colour space, so the pair is
meaningful without training: the image tower projects the image's mean (normalised) colour, the text tower projects
the sum of its token vectors up to the end-of-text token, and colour words carry the normalised colour they name.
"red" therefore ranks red photos first, as a real CLIP would.

The text graph is CLIP-shaped: int32 ids (N, 77) -> token embedding -> causal mixing (cumulative sum) -> pooling at
the EOT position found by ArgMax over the ids (EOT has the highest id, as in CLIP) -> projection. With
`--output sequence` the pooling is left to the caller (per-position outputs (N, 77, DIM)).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

OPSET = 17
IR_VERSION = 9
DIM = 16
CONTEXT = 77
BOS, EOT, UNK = "<|startoftext|>", "<|endoftext|>", "<|unk|>"
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
COLOURS = {
    "red": (255, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 255), "yellow": (255, 230, 0),
    "white": (255, 255, 255), "black": (0, 0, 0),
}
SENTENCES = [
    "a photo of a red bicycle", "a green tree in the park", "a blue car on the road", "the yellow sun",
    "a white cat and a black dog", "a photo of my keys on the table", "red green blue yellow white black",
]


def colour_vector(rgb) -> np.ndarray:
    """A colour as the image tower sees its mean: normalised with CLIP's mean and std."""
    return (np.asarray(rgb, np.float32) / 255 - MEAN) / STD


def projection(seed: int = 0) -> np.ndarray:
    """A (3, DIM) map with orthonormal rows, so cosines in colour space survive the projection."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((DIM, 3)))
    return q.T.astype(np.float32)


def build_tokenizer() -> Tokenizer:
    """A WordLevel tokenizer trained on a few sentences; EOT is added last so it has the highest id (CLIP's rule)."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=[UNK, BOS], min_frequency=1))
    tok.add_special_tokens([EOT])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOT}", special_tokens=[(BOS, tok.token_to_id(BOS)), (EOT, tok.token_to_id(EOT))]
    )
    return tok


def token_table(tok: Tokenizer, seed: int = 0) -> np.ndarray:
    """(vocab, 3) token vectors: colour words carry their colour, other words a small deterministic vector."""
    rng = np.random.default_rng(seed + 1)
    vocab = tok.get_vocab(with_added_tokens=True)
    table = np.zeros((max(vocab.values()) + 1, 3), np.float32)
    for word, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        if word in COLOURS:
            table[i] = colour_vector(COLOURS[word])
        else:  # EOT too: padding with EOT then changes later positions, so pooling at the wrong one shows
            table[i] = rng.standard_normal(3).astype(np.float32) * 0.15
    return table


def _model(graph) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeret-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def build_text(table: np.ndarray, proj: np.ndarray, output: str = "embedding") -> onnx.ModelProto:
    causal = np.tril(np.ones((CONTEXT, CONTEXT), np.float32))  # position t sees tokens 0..t, like CLIP's mask
    inits = [
        numpy_helper.from_array(table, "token_embedding"),
        numpy_helper.from_array(causal, "causal"),
        numpy_helper.from_array(proj, "projection"),
    ]
    nodes = [
        helper.make_node("Gather", ["token_embedding", "text"], ["tokens"]),  # (N, 77, 3)
        helper.make_node("MatMul", ["causal", "tokens"], ["hidden"]),  # (N, 77, 3)
    ]
    if output == "sequence":
        nodes.append(helper.make_node("MatMul", ["hidden", "projection"], ["sequence"]))
        out = helper.make_tensor_value_info("sequence", TensorProto.FLOAT, ["N", CONTEXT, DIM])
    else:
        nodes += [
            helper.make_node("ArgMax", ["text"], ["eot"], axis=1, keepdims=1),  # (N, 1): first EOT position
            helper.make_node("GatherND", ["hidden", "eot"], ["pooled"], batch_dims=1),  # (N, 3)
            helper.make_node("MatMul", ["pooled", "projection"], ["embedding"]),
        ]
        out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM])
    inp = helper.make_tensor_value_info("text", TensorProto.INT32, ["N", CONTEXT])
    return _model(helper.make_graph(nodes, "tiny_clip_text", [inp], [out], inits))


def build_image(proj: np.ndarray) -> onnx.ModelProto:
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixels"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["colour"]),
        helper.make_node("MatMul", ["colour", "projection"], ["embedding"]),
    ]
    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, "H", "W"])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM])
    inits = [numpy_helper.from_array(proj, "projection")]
    return _model(helper.make_graph(nodes, "tiny_clip_image", [inp], [out], inits))


def build_thumbnail(side: int = 64, cell: int = 8) -> onnx.ModelProto:
    """A near-duplicate image tower: the centred (side/cell)^2 x 3 thumbnail of the image, like a perceptual hash.

    Re-encoded and resized copies keep their thumbnail (cosine > 0.98) while distinct photos do not (< 0.85),
    which a random-weight network cannot promise.
    """
    nodes = [
        helper.make_node("AveragePool", ["pixels"], ["cells"], kernel_shape=[cell, cell], strides=[cell, cell]),
        helper.make_node("Flatten", ["cells"], ["flat"]),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["flat", "mean"], ["embedding"]),
    ]
    dim = 3 * (side // cell) ** 2
    inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, side, side])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])
    return _model(helper.make_graph(nodes, "tiny_thumbnail", [inp], [out]))


def write_thumbnail_encoder(out_dir: Path) -> Path:
    """An encoder folder (model.onnx + preprocess.json) for duplicate-finding tests."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(build_thumbnail().SerializeToString())
    (out_dir / "preprocess.json").write_text(json.dumps(_preprocess(), indent=2))
    return out_dir


def _preprocess() -> dict:
    return {
        "input_size": 64, "resize": "shortest_edge_center_crop", "interpolation": "bicubic",
        "mean": MEAN.tolist(), "std": STD.tolist(), "layout": "NCHW", "output": "embedding",
    }


PHOTO_COLOURS = list(COLOURS)


def write_colour_photos(folder: Path, seed: int = 0) -> Path:
    """Six mostly-one-colour PNGs (`<colour>.png`) that the image tower and the text tower agree on."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in PHOTO_COLOURS:
        px = np.clip(np.array(COLOURS[name], np.float32) + rng.normal(0, 20, (96, 128, 3)), 0, 255)
        Image.fromarray(px.astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def write(out_dir: Path, output: str = "embedding", seed: int = 0) -> tuple[Path, Path]:
    """Write the image and text folders under `out_dir`; returns (image_folder, text_folder)."""
    out_dir = Path(out_dir)
    image_dir, text_dir = out_dir / "tiny-clip-image", out_dir / "tiny-clip-text"
    image_dir.mkdir(parents=True, exist_ok=True)
    text_dir.mkdir(parents=True, exist_ok=True)
    proj = projection(seed)
    (image_dir / "model.onnx").write_bytes(build_image(proj).SerializeToString())
    (image_dir / "preprocess.json").write_text(json.dumps(_preprocess(), indent=2))
    tok = build_tokenizer()
    tok.save(str(text_dir / "tokenizer.json"))
    (text_dir / "model.onnx").write_bytes(build_text(token_table(tok, seed), proj, output).SerializeToString())
    # the same keys edgeret.models writes from a registry [models.NAME.text] table
    settings = {"tokenizer": "tokenizer.json", "context_length": CONTEXT, "output": output,
                "pad_token": EOT, "pairs_with": image_dir.name}
    (text_dir / "text.json").write_text(json.dumps(settings, indent=2))
    return image_dir, text_dir


def main(argv: list[str] | None = None) -> None:
    """The command line: write the models into OUT_DIR and print their paths."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--output", choices=["embedding", "sequence"], default="embedding")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for folder in write(args.out_dir, args.output, args.seed):
        print(folder)


if __name__ == "__main__":
    main()
