"""Regional vectors: besides its global vector, a photo can be described by crops of itself (R-MAC-style grids).

A small object in a busy photo hardly moves the photo's global vector, but it fills one of its crops. Each crop is
re-encoded (an extra encoder pass): pooling sub-windows of one feature map was measured and helped far less (the
receptive fields carry the clutter in; docs/evaluation.md). A query is split by the same grid, and a photo scores
the best cosine over every (query vector, photo vector) pair.

Region vectors get their own keys in the vector index (`region_key`), mapped back to the photo by `photo_of`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import LibraryError
from .preprocess import Preprocess

REGION_BIT = 1 << 62  # photo keys are SQLite row ids, far below this
REGION_SLOTS = 256  # region index within a photo: the low 8 bits of a region key
MAX_PER_AXIS = 6  # a panorama gets at most this many crops along its long side per level (they overlap less)
OVERLAP = 0.4  # R-MAC's overlap between neighbouring crops of one level


@dataclass(frozen=True)
class RegionSpec:
    """A named grid: the R-MAC levels it uses (level l: squares of side 2·min(w, h)/(l + 1))."""

    name: str
    levels: tuple[int, ...] = ()
    photos: bool = True  # False: only queries are split; the library keeps one vector per photo (no index cost)

    @property
    def enabled(self) -> bool:
        """Queries are split into crops."""
        return bool(self.levels)

    @property
    def indexes(self) -> bool:
        """Library photos get region vectors (crops encoded at index time)."""
        return self.enabled and self.photos

    @property
    def id(self) -> str:
        """What the stored vectors depend on: compared with the library's record before its vectors are mixed.
        A query-only setting stores what `off` does, so switching between them needs no re-index."""
        return f"{self.name}:rmac{'-'.join(map(str, self.levels))}:o{OVERLAP}:v1" if self.indexes else "off"


SETTINGS = {
    "off": RegionSpec("off"),
    "grid": RegionSpec("grid", (2,)),  # 6-8 crops of 2/3 of the short side: an object at 25-45 % of the width fits
    "dense": RegionSpec("dense", (2, 3)),  # + 12-15 crops of half the short side: best figures, ~2.7x the vectors
    # The query split as grid, library photos not: index cost exactly off's, so it is the default for CLIP-sized
    # fixed-input encoders, where each crop is a full pass (ViT-B/32, 3000x2000 photos: grid 8.1x off's index time,
    # over the 2x budget). On the devset (mnv2-gem) it lifts clutter_paste 0.249 -> 0.404 without boxes (grid 0.454)
    # and moves no kind by more than 0.003 (docs/evaluation.md); it cannot help a busy *library* photo.
    "query": RegionSpec("query", (2,), photos=False),
}
OFF = SETTINGS["off"]


def resolve(name: str) -> RegionSpec:
    try:
        return SETTINGS[name]
    except KeyError:
        raise LibraryError(f"unknown regions setting {name!r}: choose one of {', '.join(SETTINGS)}") from None


def default_for(pre: Preprocess) -> RegionSpec:
    """The measured default: crops for encoders that take any input size (their crops run at half size: grid 2.6x
    off's index time with mnv2-gem); query crops only for fixed-size encoders such as CLIP, where every crop is a
    full pass (docs/evaluation.md, scripts/bench_regions.py)."""
    return SETTINGS["grid"] if pre.resize == "longest_edge" else SETTINGS["query"]


def boxes(spec: RegionSpec, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) pixel boxes of the crops of a width × height image, level by level."""
    m = min(width, height)
    out = []
    for level in spec.levels:
        side = 2 * m / (level + 1)
        for y in _starts(height, side):
            for x in _starts(width, side):
                out.append((round(x), round(y), min(width, round(x + side)), min(height, round(y + side))))
    return out[:REGION_SLOTS]


def _starts(dim: int, side: float) -> list[float]:
    if side >= dim:
        return [0.0]
    n = min(MAX_PER_AXIS, math.ceil((dim - side) / (side * (1 - OVERLAP))) + 1)
    return [i * (dim - side) / (n - 1) for i in range(n)]


def crop_preprocess(pre: Preprocess) -> Preprocess:
    """Crops of an any-size encoder run at half its input size (a quarter of the pixels): measured nearly as good."""
    if pre.resize == "longest_edge":
        return dataclasses.replace(pre, input_size=max(pre.multiple_of, pre.input_size // 2))
    return pre


def decode_side(spec: RegionSpec, pre: Preprocess, query: bool = False) -> int:
    """The smallest image side a decoder may hand over so that the smallest crop still has its input size
    (for a library photo, or with `query` for a query photo)."""
    if not (spec.enabled if query else spec.indexes):
        return pre.min_decode_side
    smallest = 2 / (max(spec.levels) + 1)  # crop side as a fraction of the short side
    return max(pre.min_decode_side, math.ceil(crop_preprocess(pre).input_size / smallest))


def tensors(spec: RegionSpec, image: Image.Image, pre: Preprocess) -> list[np.ndarray]:
    """The preprocessed crops of library photo `image` (none when the setting gives photos no regions)."""
    return _crops(spec, image, pre) if spec.indexes else []


def _crops(spec: RegionSpec, image: Image.Image, pre: Preprocess) -> list[np.ndarray]:
    crop_pre = crop_preprocess(pre)
    return [crop_pre(image.crop(b)) for b in boxes(spec, *image.size)]


def encode_sets(encoder, images: Sequence[Image.Image], spec: RegionSpec) -> list[np.ndarray]:
    """Per query image, its vectors: the global one first, then one per crop; all encoded in one batched call."""
    return encode_groups(encoder, [[encoder.preprocess(im), *_crops(spec, im, encoder.preprocess)] for im in images])


def encode_groups(encoder, groups: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Encode groups of preprocessed tensors in one call (batched by shape); one matrix per group."""
    if not groups:
        return []
    flat = encoder.encode([t for g in groups for t in g])
    bounds = np.cumsum([0] + [len(g) for g in groups])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def region_keys(photo: int, count: int) -> np.ndarray:
    return REGION_BIT | (np.int64(photo) << 8) | np.arange(count, dtype=np.int64)


def photo_of(keys: np.ndarray) -> np.ndarray:
    """The photo key of each index key (a photo's own key, or one of its region keys)."""
    keys = np.asarray(keys, np.int64)
    return np.where(keys >= REGION_BIT, (keys & ~np.int64(REGION_BIT)) >> 8, keys)
