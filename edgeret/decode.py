"""Decode any supported photo into an upright RGB Pillow image, or raise DecodeError with a reason.

Files are only ever opened for reading. JPEGs are decoded at a reduced DCT scale when the caller needs a small image,
HEIC/HEIF through pillow-heif, RAW files through their embedded preview.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DecodeError
from .scan import RAW_EXTENSIONS

try:  # HEIC/HEIF support is a plugin; edgeret still works on JPEG/PNG without it
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pillow_heif = None  # type: ignore[assignment]

MAX_PIXELS = 250_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
log = logging.getLogger(__name__)


def _log_pillow_warnings() -> None:
    """Pillow's warnings about odd files (corrupt EXIF, TIFF tags...) go to the log, not the terminal.

    One index run over a real library printed hundreds of them; the file's outcome is what the user needs, and
    `-v` shows them. Other warnings are shown as before.
    """
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if "PIL" in Path(filename).parts or "pillow_heif" in Path(filename).parts:
            log.info("%s: %s", category.__name__, message)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.filterwarnings("always", module=r"PIL\.")  # every one reaches the log, not only the first


_log_pillow_warnings()

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"IIRO", "ORF"),
    (b"IIRS", "ORF"),
    (b"IIU\x00", "RW2"),
    (b"FUJIFILMCCD-RAW", "RAF"),
)
_ISO_BRANDS = {  # ISO base media "ftyp" brands that Pillow (AVIF) or pillow-heif (HEIF) read, and Canon CR3
    b"heic": "HEIF", b"heix": "HEIF", b"hevc": "HEIF", b"heim": "HEIF", b"heis": "HEIF", b"mif1": "HEIF",
    b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF", b"crx ": "CR3",
}


def sniff(head: bytes) -> str | None:
    """The container format named by a file's first bytes, or None if it is not an image edgeret reads."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12])
    return None


def decode(path: Path | str, min_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read `path` as an upright RGB image.

    `min_side` lets JPEG decoding skip detail: the result keeps both sides at least that large (before rotation).
    The image's info holds "source_path" (this path) and "source_size" (the photo's own upright pixel size).
    Raises DecodeError for empty, truncated, corrupt, oversized or non-image files.
    """
    path = Path(path)
    image = _decode_path(path, min_side, max_pixels)
    image.info["source_path"] = str(path)  # lets a cache recognise a library photo given as a query
    return image


def _decode_path(path: Path, min_side: int | None, max_pixels: int) -> Image.Image:
    try:
        with path.open("rb") as f:
            head = f.read(32)
            if not head:
                raise DecodeError("empty file")
            kind = sniff(head)
            if path.suffix.lower() in RAW_EXTENSIONS and kind in {"TIFF", "ORF", "RW2", "RAF", "CR3"}:
                return _decode_raw(path, max_pixels)
            if kind is None:
                raise DecodeError("not an image: its content matches no supported format")
            f.seek(0)
            return _decode_pillow(f, min_side, max_pixels)
    except DecodeError:
        raise
    except Exception as e:
        raise _as_decode_error(e) from None


class PhotoLoader:
    """A deferred decode of one library photo that names it (key, path), so re-rankers can store or cache by it."""

    def __init__(self, key: int, path: str, min_side: int | None = None):
        self.key, self.path, self.min_side = key, path, min_side

    def __call__(self) -> Image.Image:
        return decode(self.path, min_side=self.min_side)


def decode_bytes(data: bytes, min_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Like decode() for an in-memory image (a pasted or dropped picture)."""
    if sniff(data[:32]) is None:
        raise DecodeError("not an image: its content matches no supported format")
    try:
        return _decode_pillow(io.BytesIO(data), min_side, max_pixels)
    except DecodeError:
        raise
    except Exception as e:
        raise _as_decode_error(e) from None


def _as_decode_error(e: Exception) -> Exception:
    """The user-facing reason for a decoder exception; anything unexpected passes through unchanged."""
    if isinstance(e, Image.DecompressionBombError | Image.DecompressionBombWarning):
        # Pillow's own text names its hard limit (twice ours): say ours, as the README does
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels.group(1)):,} pixels " if pixels else ""
        return DecodeError(f"image too large: {size}exceeds the {MAX_PIXELS // 1_000_000} MP limit")
    if isinstance(e, UnidentifiedImageError):
        return DecodeError("corrupt or unsupported image")
    if isinstance(e, OSError | SyntaxError | ValueError | EOFError):
        return DecodeError(_reason(e))
    return e


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    if "truncated" in text or isinstance(e, EOFError):
        return f"truncated image ({text})"
    return f"corrupt image ({text})"


def _decode_pillow(fp, min_side: int | None, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(fp) as im:
            _check_size(im.size, max_pixels)
            full = im.size
            if min_side and im.format == "JPEG":
                im.draft("RGB", (min_side, min_side))
            im.load()
            out = _upright_rgb(im)
    # the photo's own pixel size, upright, whatever scale it was decoded at
    out.info["source_size"] = full if (out.size[0] >= out.size[1]) == (full[0] >= full[1]) else full[::-1]
    return out


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise DecodeError("image has no pixels")
    if w * h > max_pixels:
        raise DecodeError(f"image too large: {w}x{h} pixels exceeds the {max_pixels // 1_000_000} MP limit")


def _upright_rgb(im: Image.Image) -> Image.Image:
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Composite on white: transparent pixels carry arbitrary colours underneath.
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return im.convert("RGB")


def _decode_raw(path: Path, max_pixels: int) -> Image.Image:
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                return _decode_pillow(io.BytesIO(bytes(thumb.data)), None, max_pixels)
            if thumb is not None and thumb.format == rawpy.ThumbFormat.BITMAP:
                return Image.fromarray(np.asarray(thumb.data)).convert("RGB")
            # No usable preview: a half-size demosaic is slow but right.
            return Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True))
    except rawpy.LibRawError as e:
        raise DecodeError(f"unreadable RAW file ({type(e).__name__})") from None
