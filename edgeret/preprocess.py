"""Turn an RGB image into the tensor an encoder expects, as described by its preprocess.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ModelError

RESIZE_MODES = ("shortest_edge_center_crop", "stretch", "longest_edge_pad", "longest_edge")
_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
# 1024² RGB float32 is 12 MB a photo, 200 MB a batch of 16: larger inputs would exhaust a laptop's memory
MAX_INPUT_SIZE = 1024

_Int = Annotated[int, Field(strict=True)]
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Name = Annotated[str, Field(strict=True, min_length=1, max_length=256)]


class _Spec(BaseModel):
    """The schema of preprocess.json: exact types and bounds that keep memory and arithmetic sane, and the defaults
    of every key a file leaves out (the only place they are written)."""

    model_config = ConfigDict(extra="allow")

    input_size: Annotated[_Int, Field(ge=1, le=MAX_INPUT_SIZE)] = 224
    resize: Literal[RESIZE_MODES] = "shortest_edge_center_crop"  # type: ignore[valid-type]
    multiple_of: Annotated[_Int, Field(ge=1, le=MAX_INPUT_SIZE)] = 32
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"
    mean: tuple[Annotated[_Finite, Field(ge=-10, le=10)], ...] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[Annotated[_Finite, Field(ge=1e-3, le=100)], ...] = (0.26862954, 0.26130258, 0.27577711)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    output: Literal["embedding", "feature_map"] = "embedding"
    pooling: Literal["gem", "mean", "max"] = "gem"
    gem_p: Annotated[_Finite, Field(ge=0.5, le=16)] = 3.0  # p 0 divides by zero, a huge p overflows: NaN vectors
    input_name: _Name | None = None
    output_name: _Name | None = None

    @field_validator("mean", "std")
    @classmethod
    def _three(cls, v: tuple) -> tuple:
        if len(v) != 3:
            raise ValueError("needs 3 values (R, G, B)")
        return v


def _describe(err: Mapping[str, Any]) -> str:
    where = ".".join(str(x) for x in err["loc"]) or "file"
    return f"{where}: {err['msg']}"



@dataclass(frozen=True)
class Preprocess:
    """The recipe from an encoder folder's preprocess.json: build it with from_file or from_dict (defaults: _Spec's)."""

    input_size: int
    resize: str
    multiple_of: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: str
    output: str
    pooling: str
    gem_p: float
    input_name: str | None
    output_name: str | None
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
        """Validate `raw` against the schema (types and bounds) and build the recipe; a ModelError names each fault."""
        if not isinstance(raw, dict):
            raise ModelError(f"{source}: must be a JSON object")
        try:
            spec = _Spec.model_validate(raw)
        except ValidationError as e:
            raise ModelError(f"{source}: " + "; ".join(_describe(err) for err in e.errors())) from None
        known = set(cls.__dataclass_fields__) - {"extra"}
        kw = {k: getattr(spec, k) for k in known}
        if spec.resize == "longest_edge" and spec.multiple_of > spec.input_size:
            raise ModelError(f"{source}: multiple_of ({spec.multiple_of}) must not exceed input_size")
        return cls(**kw, extra={k: v for k, v in raw.items() if k not in known})

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
        x: np.ndarray = np.asarray(image, dtype=np.float32) * np.float32(1 / 255)
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
