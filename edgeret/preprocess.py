"""Turn an RGB image into the tensor an encoder expects, as described by its preprocess.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ModelError

RESIZE_MODES = ("shortest_edge_center_crop", "stretch", "longest_edge_pad", "longest_edge")
_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocess:
    """The recipe from an encoder folder's preprocess.json."""

    input_size: int = 224
    resize: str = "shortest_edge_center_crop"
    multiple_of: int = 32
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    layout: str = "NCHW"
    output: str = "embedding"
    pooling: str = "gem"
    gem_p: float = 3.0
    input_name: str | None = None
    output_name: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_file(cls, path: Path) -> Preprocess:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read {path}: {e}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "preprocess.json") -> Preprocess:
        known = set(cls.__dataclass_fields__) - {"extra"}
        kw = {k: v for k, v in raw.items() if k in known}
        for key in ("mean", "std"):
            if key in kw:
                kw[key] = tuple(float(x) for x in kw[key])
        pre = cls(**kw, extra={k: v for k, v in raw.items() if k not in known})
        pre.validate(source)
        return pre

    def validate(self, source: str) -> None:
        problems = []
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize must be one of {', '.join(RESIZE_MODES)}")
        if self.interpolation not in _FILTERS:
            problems.append("interpolation must be bilinear or bicubic")
        if self.layout not in ("NCHW", "NHWC"):
            problems.append("layout must be NCHW or NHWC")
        if self.output not in ("embedding", "feature_map"):
            problems.append("output must be embedding or feature_map")
        if self.pooling not in ("gem", "mean", "max"):
            problems.append("pooling must be gem, mean or max")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std need 3 values, std positive")
        if self.input_size < 1 or self.multiple_of < 1:
            problems.append("input_size and multiple_of must be positive")
        if problems:
            raise ModelError(f"{source}: " + "; ".join(problems))

    @property
    def min_decode_side(self) -> int:
        """The smallest side length a decoder may hand over without losing detail this recipe keeps."""
        return self.input_size

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the image is resized to before any crop or pad."""
        s = self.input_size
        if self.resize == "stretch":
            return s, s
        if self.resize == "shortest_edge_center_crop":
            scale = s / min(width, height)
            return max(s, round(width * scale)), max(s, round(height * scale))
        scale = s / max(width, height)
        w, h = width * scale, height * scale
        if self.resize == "longest_edge":
            m = self.multiple_of
            return max(m, int(w / m + 0.5) * m), max(m, int(h / m + 0.5) * m)
        return max(1, round(w)), max(1, round(h))

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Return one float32 tensor without the batch axis (C,H,W or H,W,C)."""
        size = self.target_size(*image.size)
        if image.size != size:
            image = image.resize(size, _FILTERS[self.interpolation])
        if self.resize == "shortest_edge_center_crop":
            image = _center_crop(image, self.input_size)
        x = np.asarray(image, dtype=np.float32) * np.float32(1 / 255)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.resize == "longest_edge_pad":
            x = _pad_square(x, self.input_size)  # zeros after normalisation = the mean colour
        return np.ascontiguousarray(x.transpose(2, 0, 1) if self.layout == "NCHW" else x)


def _center_crop(image: Image.Image, s: int) -> Image.Image:
    w, h = image.size
    left, top = (w - s) // 2, (h - s) // 2
    return image.crop((left, top, left + s, top + s))


def _pad_square(x: np.ndarray, s: int) -> np.ndarray:
    h, w, _ = x.shape
    out = np.zeros((s, s, 3), np.float32)
    top, left = (s - h) // 2, (s - w) // 2
    out[top : top + h, left : left + w] = x
    return out
