"""Image encoders over onnxruntime (CPU): a folder with model.onnx + preprocess.json in, unit vectors out."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import EncoderFailed, ModelError
from .preprocess import Preprocess

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # must precede the import below (see edgeret/__init__.py)
import onnxruntime as ort  # noqa: E402

ort.set_default_logger_severity(3)


def model_fingerprint(folder: Path, sidecars: tuple[str | Path, ...] = ("preprocess.json",)) -> str:
    """A cheap, stable id for a model folder: its sidecar files plus the head, tail and size of model.onnx."""
    model = folder / "model.onnx"
    h = hashlib.blake2b(digest_size=12)
    for side in sidecars:
        path = folder / side
        if path.is_file():
            h.update(path.read_bytes())
    size = model.stat().st_size
    h.update(str(size).encode())
    with model.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()


class ImageEncoder:
    """An ONNX image encoder; `encode` maps preprocessed tensors to L2-normalised float32 vectors."""

    def __init__(self, folder: Path | str, threads: int = 2, name: str | None = None, spec: str | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)):
        self.folder = Path(folder)
        self.spec = spec or str(self.folder)  # what the user named: a registry name or the folder
        model_path = self.folder / "model.onnx"
        if not model_path.is_file() or not (self.folder / "preprocess.json").is_file():
            raise ModelError(f"{self.folder} is not an encoder folder (needs model.onnx and preprocess.json)")
        _check_onnx(model_path)
        self.name = name or self.folder.name
        self.preprocess = Preprocess.from_file(self.folder / "preprocess.json")
        self.id = f"{self.name}:{model_fingerprint(self.folder)}"
        self.session = onnx_session(model_path, threads, providers)
        self.input_name = _pick("input", self.preprocess.input_name, [i.name for i in self.session.get_inputs()])
        self.output_name = _pick("output", self.preprocess.output_name, [o.name for o in self.session.get_outputs()])
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            probe = Image.new("RGB", (self.preprocess.input_size,) * 2, (128, 128, 128))
            self._dim = int(self.encode_images([probe]).shape[1])
        return self._dim

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode([self.preprocess(im) for im in images])

    def encode(self, tensors: Sequence[np.ndarray]) -> np.ndarray:
        """Encode preprocessed tensors (any mix of sizes); rows keep the input order."""
        out: list[np.ndarray | None] = [None] * len(tensors)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, t in enumerate(tensors):
            groups[t.shape].append(i)
        for idx in groups.values():
            vecs = self._run(np.stack([tensors[i] for i in idx]))
            for i, v in zip(idx, vecs, strict=True):
                out[i] = v
        rows = [v for v in out if v is not None]  # every index was in one group: none is left None
        return np.stack(rows) if rows else np.zeros((0, self._dim or 0), np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            y = self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as e:  # onnxruntime's own types: a shape or layout the model does not take
            raise EncoderFailed(f"the encoder failed: {str(e).splitlines()[0][:300]}") from None
        if self.preprocess.output == "feature_map":
            y = pool(y, self.preprocess.pooling, self.preprocess.gem_p)
        y = np.asarray(y, np.float32).reshape(len(batch), -1)
        return l2_normalize(y)


def pool(fmap: np.ndarray, method: str, p: float = 3.0) -> np.ndarray:
    """Pool an (N, C, H, W) feature map to (N, C)."""
    x = fmap.astype(np.float32, copy=False)
    if method == "mean":
        return x.mean(axis=(2, 3))
    if method == "max":
        return x.max(axis=(2, 3))
    # in float64: x^p of float32 activations overflows for p well inside the allowed range
    gem = np.power(np.power(np.clip(x, 1e-6, None).astype(np.float64), p).mean(axis=(2, 3)), 1.0 / p)
    return gem.astype(np.float32)


def _pick(kind: str, wanted: str | None, names: list[str]) -> str:
    if wanted is None:
        return names[0]
    if wanted not in names:
        raise ModelError(f"preprocess.json names {kind} {wanted!r}, but the model's {kind}s are {', '.join(names)}")
    return wanted


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def onnx_session(model_path: Path, threads: int, providers: Sequence[str] = ("CPUExecutionProvider",)):
    """An onnxruntime session; `providers` other than the CPU one must be available in this onnxruntime build."""
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ModelError(f"this onnxruntime has no {', '.join(missing)} (it has {', '.join(available)})")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), opts, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own exception types for malformed models
        raise ModelError(f"onnxruntime cannot load {model_path}: {str(e).splitlines()[0]}") from None


def _check_onnx(path: Path) -> None:
    try:
        from .modelfiles import check_onnx
    except ImportError:  # the model-file checks arrive with the model registry
        if path.stat().st_size < 16:
            raise ModelError(f"{path} is too small to be an ONNX model") from None
        return
    check_onnx(path)
