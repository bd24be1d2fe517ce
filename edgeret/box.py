"""Query boxes: the region of a query photo the user means, parsed, checked against the image and cropped.

A box is `x0,y0,x1,y1` in pixels of the upright image (EXIF orientation applied), x1/y1 exclusive as in a crop:
`0,0,W,H` is the whole photo. Written with a decimal point and every value within 0–1 (`0.25,0.1,0.75,0.9`) it is
a fraction of the width and height instead. Whole numbers are pixels, so `0,0,1,1` is the top-left pixel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

from .errors import UsageError

MIN_SIDE = 8  # px: a smaller region holds too little for any encoder (CNNs shrink it 32x) or local features
RERANK_MARGIN = 0.1  # re-rankers see the box grown by this fraction of its size on each side (context at the edges)

BOX_HELP = ("restrict the query to a region: x0,y0,x1,y1 in pixels of the upright photo (x1,y1 exclusive), or as "
            "fractions 0-1 of its width and height when every value is written with a decimal point and is at "
            "most 1 (0.2,0.1,0.7,0.9)")

_NUMBER = re.compile(r"^\s*-?(\d+(\.\d*)?|\.\d+)\s*$")


@dataclass(frozen=True)
class Box:
    """A region in pixels of the upright image: left, top, right, bottom (right/bottom exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def check(self, size: tuple[int, int]) -> Box:
        """This box if it lies inside an image of `size` (w, h) and is not empty; UsageError saying what is wrong."""
        w, h = size
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise UsageError(f"box {_fmt(self)} is empty or inverted: x0 < x1 and y0 < y1 are needed")
        if self.x0 < 0 or self.y0 < 0 or self.x1 > w or self.y1 > h:
            raise UsageError(f"box {_fmt(self)} lies outside the {w}x{h} image (0 <= x0 < x1 <= {w}, "
                             f"0 <= y0 < y1 <= {h})")
        if self.width < MIN_SIDE or self.height < MIN_SIDE:
            raise UsageError(f"box {_fmt(self)} is {self.width}x{self.height} px: at least {MIN_SIDE} px a side")
        return self

    def grown(self, margin: float, size: tuple[int, int]) -> Box:
        """The box grown by `margin` × its width/height on each side, clipped to an image of `size`."""
        mx, my = round(margin * self.width), round(margin * self.height)
        return Box(max(0, self.x0 - mx), max(0, self.y0 - my), min(size[0], self.x1 + mx), min(size[1], self.y1 + my))

    def crop(self, image: Image.Image, margin: float = 0.0) -> Image.Image:
        """The boxed region of `image` (the box checked against it), grown by `margin` if given."""
        box = self.check(image.size).grown(margin, image.size) if margin else self.check(image.size)
        return image.crop((box.x0, box.y0, box.x1, box.y1))


@dataclass(frozen=True)
class BoxSpec:
    """A parsed `--box` before it meets an image: four numbers, as pixels or as fractions."""

    values: tuple[float, float, float, float]
    fractions: bool

    def resolve(self, size: tuple[int, int]) -> Box:
        """The box in pixels of an image of `size` (w, h), checked (UsageError if outside, empty or inverted)."""
        v = self.values
        if self.fractions:
            w, h = size
            v = (v[0] * w, v[1] * h, v[2] * w, v[3] * h)
        return Box(*(round(x) for x in v)).check(size)


def parse_box(text: str) -> BoxSpec:
    """Parse `x0,y0,x1,y1` (see the module doc for pixels vs fractions); UsageError on anything else."""
    parts = str(text).split(",")
    if len(parts) != 4 or not all(_NUMBER.match(p) for p in parts):
        raise UsageError(f"--box {text!r}: expected four numbers x0,y0,x1,y1 (pixels, or fractions 0-1 like "
                         "0.2,0.1,0.7,0.9)")
    x0, y0, x1, y1 = (float(p) for p in parts)
    values = (x0, y0, x1, y1)
    decimal = all("." in p for p in parts)
    if decimal and all(0.0 <= x <= 1.0 for x in values):
        return BoxSpec(values, fractions=True)
    if any("." in p for p in parts):
        raise UsageError(f"--box {text!r}: pixels are whole numbers; fractions need a decimal point in every value "
                         "and all values within 0-1")
    return BoxSpec(values, fractions=False)


def as_box(value, size: tuple[int, int]) -> Box:
    """A Box from a Box, a BoxSpec, a `x0,y0,x1,y1` string or four pixel numbers, checked against `size`."""
    if isinstance(value, Box):
        return value.check(size)
    if isinstance(value, BoxSpec):
        return value.resolve(size)
    if isinstance(value, str):
        return parse_box(value).resolve(size)
    try:
        x0, y0, x1, y1 = (int(round(float(x))) for x in value)
    except (TypeError, ValueError):
        raise UsageError(f"a box is four numbers x0,y0,x1,y1, got {value!r}") from None
    return Box(x0, y0, x1, y1).check(size)


@dataclass(frozen=True)
class RegionQuery:
    """A query photo with the box the user drew: re-rankers crop it their own way (see `region`)."""

    image: Image.Image
    box: Box

    def region(self, margin: float = RERANK_MARGIN) -> Image.Image:
        """The boxed region, grown by `margin` of its size on each side (clipped to the photo)."""
        return self.box.crop(self.image, margin)


def query_image(query, margin: float = RERANK_MARGIN):
    """What a re-ranker looks at: a RegionQuery's region with `margin`, anything else (photo, text) as it is."""
    return query.region(margin) if isinstance(query, RegionQuery) else query


def _fmt(b: Box) -> str:
    return f"{b.x0},{b.y0},{b.x1},{b.y1}"


def boxed_query(image: Image.Image, box=None) -> tuple[Image.Image, object, Box | None]:
    """(what the first stage encodes, what re-rankers get, the box in pixels) for a query photo and optional box.

    Without a box: the photo for both. With one: the exact region for the encoder (a margin measurably costs
    first-stage mAP on the devset), and a RegionQuery for re-rankers, which crop it their own way.
    """
    if box is None:
        return image, image, None
    b = as_box(box, image.size)
    return b.crop(image), RegionQuery(image, b), b
