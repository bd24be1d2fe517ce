"""What a photo looks like, in under 2 KiB: a perceptual hash and a tiny thumbnail, to tell "the same picture" apart.

Computed at index time from the upright decoded photo, so it is the same whichever encoder the library uses. Two
photos are the same picture (a resized, re-compressed, converted, lightly cropped or EXIF-rotated copy) when

- their pHash (imagehash.phash: the 8×8 lowest DCT frequencies of a 32×32 grey image, above their median)
  differ in few bits, and
- their 32×32 grey thumbnails correlate (Pearson) at least SAME_CORRELATION, directly or after aligning one to a
  crop of the other (up to MAX_CROP of a side: a 5 % crop shifts and scales the thumbnail by a pixel or two), and
- their mean colours over the part they share differ by at most SAME_COLOUR (0-255, any channel): a re-toned,
  re-lit or black-and-white copy is an edit, not the same picture.

The pHash is imagehash's (a well-kept library: its phash of the 32×32 grey thumbnail, so the hash and the
thumbnail the crop search uses are one image); the thumbnail comparison and the crop search are ours, as imagehash
has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

SIDE = 32  # grey thumbnail side, and the grey image the hash's DCT runs on
HASH_SIDE = 8  # 8×8 low frequencies: a 64-bit hash
COLOUR_SIDE = 16  # the colour thumbnail: mean colours over the part two versions share (a crop changes the mean)
THUMB_BYTES = SIDE * SIDE + COLOUR_SIDE * COLOUR_SIDE * 3  # grey pixels, then the RGB ones

SAME_DISTANCE = 22  # bits of 64: at most this many differ between copies (5 % crops reach the high teens)
# A pHash-bucket pair that is not also an embedding neighbour is judged only this close: resizes and re-encodes
# measure 0-4 bits, 5 % crops 14 at the 95th percentile (22 at most). Further bucket pairs are mostly chance
# (16 shared bits, the other 48 random: a third of them lie within 22 bits, 1.5 % within 16), and judging them
# all made a 100k library's duplicates twice as slow.
BUCKET_DISTANCE = 16
SAME_CORRELATION = 0.95
SAME_COLOUR = 6.0
MAX_CROP = 0.12  # crop search: the kept part of a side may be down to 1 - MAX_CROP
SEARCH_FROM = 0.35  # blurred thumbnail correlation below which no crop search is tried (5 % crops: >= 0.4)

TABLES = 8  # hash tables of 16 bits each: the 4 quarters of the hash, then 4 quarters of a fixed bit permutation
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.int64)
_PERMUTATION = np.random.default_rng(20261202).permutation(64)


@dataclass(frozen=True)
class Picture:
    """A photo's signature: `phash` as a signed 64-bit integer (SQLite's INTEGER), `thumb` THUMB_BYTES bytes
    (SIDE² grey, then COLOUR_SIDE² RGB)."""

    phash: int
    thumb: bytes


@dataclass(frozen=True)
class Evidence:
    """How alike two pictures are: pHash bits that differ, best thumbnail correlation, mean colour difference."""

    distance: int
    correlation: float
    colour: float

    @property
    def same(self) -> bool:
        return (self.distance <= SAME_DISTANCE and self.correlation >= SAME_CORRELATION
                and self.colour <= SAME_COLOUR)


def signature(image: Image.Image) -> Picture:
    """The signature of an upright RGB (or any mode) image."""
    factor = min(image.size) // (4 * SIDE)  # box-average a large photo down first: 1 ms instead of 20 at 768 px
    base = image.reduce(factor) if factor > 1 else image
    grey = np.asarray(base.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS), np.uint8)
    colour = base.convert("RGB").resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BOX)
    return Picture(phash_of(grey), grey.tobytes() + colour.tobytes())


def phash_of(grey: np.ndarray) -> int:
    """imagehash.phash of a SIDE×SIDE grey image (imagehash's own resize to 32×32 is then the identity), its 64
    bits packed most significant first, as a signed int64."""
    import imagehash  # imports scipy.fftpack: only when a photo is hashed, not on every CLI start

    bits = imagehash.phash(Image.fromarray(grey, "L"), hash_size=HASH_SIDE, highfreq_factor=SIDE // HASH_SIDE).hash
    return int(np.packbits(bits.ravel()).view(">i8")[0])


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between int64 hashes, element-wise."""
    x = np.ascontiguousarray(np.bitwise_xor(np.asarray(a, np.int64), np.asarray(b, np.int64)))
    return _POPCOUNT[x.view(np.uint8).reshape(-1, 8)].sum(axis=1).reshape(x.shape)  # numpy < 2 has no bitwise_count


def bucket_pairs(hashes: np.ndarray, max_bucket: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (i < j) whose hashes agree on all 16 bits of at least one of TABLES parts (multi-index hashing).

    Two hashes within 3 bits always share one of the four plain quarters; the permuted quarters catch more pairs a
    few bits further apart. A bucket holding more than `max_bucket` rows (a flat colour, many blank frames) is
    skipped rather than paired quadratically: those pairs still come from the embedding neighbours.
    """
    h = np.asarray(hashes, np.int64).view(np.uint64)
    n = len(h)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bits = ((h[:, None] >> np.arange(63, -1, -1, dtype=np.uint64)[None, :]) & np.uint64(1)).astype(np.uint8)
    views = [bits, bits[:, _PERMUTATION]][: (TABLES + 3) // 4]
    weights = (1 << np.arange(15, -1, -1)).astype(np.int64)
    a_all: list[np.ndarray] = []
    b_all: list[np.ndarray] = []
    tables = [(v, q) for v in views for q in range(4)][:TABLES]
    for v, q in tables:
        key = v[:, 16 * q : 16 * (q + 1)].astype(np.int64) @ weights
        order = np.argsort(key, kind="stable")
        sk = key[order]
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for size in np.unique(sizes[(sizes > 1) & (sizes <= max_bucket)]):
            firsts = starts[sizes == size]
            rows = order[firsts[:, None] + np.arange(size)[None, :]]  # (buckets, size)
            i, j = np.triu_indices(int(size), 1)
            a_all.append(rows[:, i].ravel())
            b_all.append(rows[:, j].ravel())
    if not a_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    uniq = np.unique(lo * n + hi)
    return uniq // n, uniq % n


def compare(a: Picture, b: Picture) -> Evidence:
    """The evidence for or against `a` and `b` being the same picture."""
    return judge([a], [b])[0]


JUDGE_CHUNK = 8192  # pairs per vectorised step: two float32 thumbnails of 7 KiB each per pair


def judge(a: list[Picture], b: list[Picture], search: bool = True) -> list[Evidence]:
    """compare() of each pair (a[i], b[i]); the crop search runs only for pairs whose hashes are close enough and
    whose thumbnails do not already correlate enough as they are (and never with `search` False: the thumbnails'
    correlation as they are)."""
    out: list[Evidence] = []
    for start in range(0, len(a), JUDGE_CHUNK):
        out += _judge(a[start:start + JUDGE_CHUNK], b[start:start + JUDGE_CHUNK], search)
    return out


def worth_searching(a: list[Picture], b: list[Picture]) -> np.ndarray:
    """Which pairs (a[i], b[i]) a crop search could still call the same picture: hashes close enough and blurred
    thumbnails correlating at least SEARCH_FROM (a 5 % crop: >= 0.4). One vectorised pass, no search."""
    out = []
    for start in range(0, len(a), JUDGE_CHUNK):
        pa, pb = a[start:start + JUDGE_CHUNK], b[start:start + JUDGE_CHUNK]
        dist = distances(np.array([p.phash for p in pa]), np.array([p.phash for p in pb]))
        out.append((dist <= SAME_DISTANCE) & (_blurred_correlation(_thumbs(pa), _thumbs(pb)) >= SEARCH_FROM))
    return np.concatenate(out) if out else np.zeros(0, bool)


def _thumbs(pictures: list[Picture]) -> np.ndarray:
    raw = np.frombuffer(b"".join(p.thumb for p in pictures), np.uint8)
    return raw.reshape(len(pictures), THUMB_BYTES).astype(np.float32)


def _blurred_correlation(ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """Pearson correlation of the lightly blurred grey thumbnails of two (m, THUMB_BYTES) stacks, row by row."""
    blur, n = _blur_matrix(), SIDE * SIDE
    xa = (blur @ ta[:, :n].reshape(-1, SIDE, SIDE) @ blur.T).reshape(len(ta), -1)
    xb = (blur @ tb[:, :n].reshape(-1, SIDE, SIDE) @ blur.T).reshape(len(tb), -1)
    xa, xb = xa - xa.mean(axis=1, keepdims=True), xb - xb.mean(axis=1, keepdims=True)
    return (xa * xb).sum(axis=1) / np.maximum(np.sqrt((xa * xa).sum(axis=1) * (xb * xb).sum(axis=1)), 1e-12)


def _judge(a: list[Picture], b: list[Picture], search: bool) -> list[Evidence]:
    if not a:
        return []
    dist = distances(np.array([p.phash for p in a]), np.array([p.phash for p in b]))
    ta, tb = _thumbs(a), _thumbs(b)
    n = SIDE * SIDE
    colour = np.abs(ta[:, n:].reshape(len(a), -1, 3).mean(axis=1) - tb[:, n:].reshape(len(b), -1, 3).mean(axis=1))
    colour = colour.max(axis=1)
    ga, gb = ta[:, :n] - ta[:, :n].mean(axis=1, keepdims=True), tb[:, :n] - tb[:, :n].mean(axis=1, keepdims=True)
    den = np.sqrt((ga * ga).sum(axis=1) * (gb * gb).sum(axis=1))
    corr = np.where(den > 0, (ga * gb).sum(axis=1) / np.maximum(den, 1e-12), 0.0)
    todo = (corr < SAME_CORRELATION) & (dist <= SAME_DISTANCE) & search
    if todo.any():  # a crop leaves the blurred thumbnails correlating still: skip the search for pairs that don't
        idx = np.flatnonzero(todo)
        todo[idx[_blurred_correlation(ta[idx], tb[idx]) < SEARCH_FROM]] = False
    for i in np.flatnonzero(todo):
        (ga_i, ca), (gb_i, cb) = thumb_parts(a[i].thumb), thumb_parts(b[i].thumb)
        c1, box1 = _crop_search(ga_i, gb_i)
        c2, box2 = _crop_search(gb_i, ga_i)
        if max(c1, c2) > corr[i]:  # the colours then compare over the part both show
            corr[i], colour[i] = (c1, _colour_gap(ca, box1, cb)) if c1 >= c2 else (c2, _colour_gap(cb, box2, ca))
    return [Evidence(int(d), round(float(c), 4), round(float(k), 1))
            for d, c, k in zip(dist, corr, colour, strict=True)]


def thumb_parts(thumb: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(SIDE×SIDE float32 grey, COLOUR_SIDE×COLOUR_SIDE×3 float32 RGB) of a stored thumbnail."""
    raw = np.frombuffer(thumb, np.uint8).astype(np.float32)
    return raw[: SIDE * SIDE].reshape(SIDE, SIDE), raw[SIDE * SIDE :].reshape(COLOUR_SIDE, COLOUR_SIDE, 3)


def _colour_gap(big: np.ndarray, box: tuple, small: np.ndarray) -> float:
    """Largest channel difference between the mean colour of `big` inside `box` and the mean colour of `small`."""
    region = np.stack([_sample(big[..., c], np.array([box], np.float64))[0] for c in range(3)], axis=-1)
    return float(np.abs(region.mean(axis=(0, 1)) - small.mean(axis=(0, 1))).max())


def _corr(stack: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Pearson correlation of each image of `stack` (m, S, S) with `ref` (S, S)."""
    x = stack.reshape(len(stack), -1)
    x = x - x.mean(axis=1, keepdims=True)
    y = ref.ravel() - ref.mean()
    den = np.sqrt((x * x).sum(axis=1) * (y @ y))
    return np.where(den > 0, (x @ y) / np.maximum(den, 1e-12), 0.0)


def _crop_search(big: np.ndarray, small: np.ndarray) -> tuple[float, tuple]:
    """(best correlation, box) of `small` with a crop of `big` (each side kept 1 - MAX_CROP .. 1, anywhere),
    resampled to SIDE×SIDE and both sides lightly blurred: a coarse grid of boxes, then two refinements around the
    best. A crop-and-resize is separable, rows @ big @ columns.T, so each grid is a few small matrix products."""
    b = _blur_matrix()  # resampling a 32 px thumbnail loses what one made from the photo keeps: blur both a little
    ref = (b @ small @ b.T).ravel()
    ref = ref - ref.mean()
    xs = ys = _COARSE
    best, box = -1.0, (1.0, 1.0, 0.5, 0.5)
    for step in (None, 0.015, 0.006):  # coarse grid, then two refinements around the best box
        if step is None:
            cols = rows = _coarse_resamplers()
        else:
            sx, sy, px, py = box
            xs, ys = _around(sx, px, step), _around(sy, py, step)
            cols, rows = _blurred_resamplers(xs), _blurred_resamplers(ys)
        crops = rows[:, None] @ (big @ cols.transpose(0, 2, 1))[None]  # (len(ys), len(xs), S, S)
        flat = crops.reshape(len(ys) * len(xs), -1)
        flat = flat - flat.mean(axis=1, keepdims=True)
        den = np.sqrt((flat * flat).sum(axis=1) * (ref @ ref))
        scores = np.where(den > 0, flat @ ref / np.maximum(den, 1e-12), -1.0)
        k = int(np.argmax(scores))
        if scores[k] > best:
            (sy, py), (sx, px) = ys[k // len(xs)], xs[k % len(xs)]
            best, box = float(scores[k]), (sx, sy, px, py)
    return best, box


def _around(scale: float, pos: float, step: float) -> list[tuple[float, float]]:
    return [(min(1.0, max(1.0 - MAX_CROP, scale + d)), min(1.0, max(0.0, pos + 8 * e)))
            for d in (-step, 0.0, step) for e in (-step, 0.0, step)]


_COARSE = [(sc, p) for sc in np.linspace(1.0 - MAX_CROP, 1.0, 5) for p in (0.0, 0.5, 1.0)]


@lru_cache(maxsize=1)
def _coarse_resamplers() -> np.ndarray:
    return _blurred_resamplers(_COARSE)


def _blurred_resamplers(axis_boxes: list[tuple[float, float]], n: int = SIDE) -> np.ndarray:
    """(m, SIDE, n) matrices: bilinear resampling of the part (kept fraction, position 0..1 of the slack) of an
    axis of n pixels to SIDE samples, followed by a [1, 2, 1] / 4 blur."""
    scale, pos = np.array(axis_boxes, np.float64).T
    t = (np.arange(SIDE) + 0.5) / SIDE
    x = np.clip(pos[:, None] * (1 - scale[:, None]) * n + t[None, :] * (scale[:, None] * n) - 0.5, 0, n - 1)
    lo = np.minimum(x.astype(np.int64), n - 2)
    f = x - lo
    m = np.zeros((len(axis_boxes), SIDE, n), np.float32)
    i, j = np.meshgrid(np.arange(len(axis_boxes)), np.arange(SIDE), indexing="ij")
    m[i, j, lo] = 1 - f  # lo and lo + 1 differ, so plain assignment adds nothing twice
    m[i, j, lo + 1] = f
    return _blur_matrix() @ m


@lru_cache(maxsize=1)
def _blur_matrix() -> np.ndarray:
    b = np.zeros((SIDE, SIDE), np.float32)
    for r in range(SIDE):
        for d, w in ((-1, 0.25), (0, 0.5), (1, 0.25)):
            b[r, min(SIDE - 1, max(0, r + d))] += w  # edge pixels repeat, as np.pad(mode="edge")
    return b


def _sample(img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Bilinear resamplings of `img` to SIDE×SIDE, one per (kept width, kept height, x position, y position) box;
    sizes are fractions of the side and positions 0..1 of the slack (0: flush left/top)."""
    n = img.shape[0]  # square: SIDE for the grey thumbnail, COLOUR_SIDE for a colour plane
    sx, sy, px, py = boxes.T
    x0, y0 = px * (1 - sx) * n, py * (1 - sy) * n
    t = (np.arange(n) + 0.5) / n
    xs = x0[:, None] + t[None, :] * (sx * n)[:, None] - 0.5  # pixel centres of the crop, in img's pixel grid
    ys = y0[:, None] + t[None, :] * (sy * n)[:, None] - 0.5
    xs, ys = np.clip(xs, 0, n - 1), np.clip(ys, 0, n - 1)
    xi, yi = np.minimum(xs.astype(np.int64), n - 2), np.minimum(ys.astype(np.int64), n - 2)
    fx, fy = (xs - xi)[:, None, :], (ys - yi)[:, :, None]
    r0, r1 = yi[:, :, None], yi[:, :, None] + 1
    c0, c1 = xi[:, None, :], xi[:, None, :] + 1
    top = img[r0, c0] * (1 - fx) + img[r0, c1] * fx
    bottom = img[r1, c0] * (1 - fx) + img[r1, c1] * fx
    return top * (1 - fy) + bottom * fy
