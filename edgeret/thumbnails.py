"""A disk cache of small JPEG thumbnails, kept in the user cache dir and never next to the photos.

Entries are keyed by (absolute path, size, file size, mtime), so an edited photo gets a new thumbnail and stale ones
are simply never read again. Each thumbnail keeps the photo's date (photoinfo.taken) in its own EXIF DateTime, so
a cached tile's date costs no read of the photo. Safe to call from many threads at once: each entry is written to a
temporary file and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from pathlib import Path

from PIL import Image

from .decode import decode
from .photoinfo import DATETIME, EXIF_DATE, exif_date, taken
from .settings import THUMBNAIL_SIZE, thumbnails_dir


class ThumbnailCache:
    """`get(photo)` returns the path of a JPEG no larger than size×size, making it on first use."""

    def __init__(self, folder: Path | str | None = None, size: int = THUMBNAIL_SIZE, quality: int = 85):
        self.folder = Path(folder).expanduser().resolve() if folder else thumbnails_dir()
        self.size = size
        self.quality = quality

    def path_for(self, photo: Path | str) -> Path:
        """The cache file for `photo` as it is now on disk (raises OSError if the photo cannot be stat'ed)."""
        photo = Path(photo).absolute()
        st = photo.stat()
        key = f"{photo}\0{self.size}\0{st.st_size}\0{st.st_mtime_ns}".encode("utf-8", "surrogateescape")
        digest = hashlib.sha1(key, usedforsecurity=False).hexdigest()
        return self.folder / digest[:2] / f"{digest}.jpg"  # 256 shards keep directories small at 100k photos

    def cached(self, photo: Path | str) -> Path | None:
        """The cache file if it already exists, without decoding anything."""
        try:
            p = self.path_for(photo)
        except OSError:
            return None
        return p if p.is_file() else None

    def get(self, photo: Path | str) -> Path:
        """The thumbnail's path, decoding the photo once if needed. Raises DecodeError or OSError."""
        target = self.path_for(photo)
        if not target.is_file():
            self._make(photo, target)
        return target

    def dated(self, photo: Path | str) -> tuple[Path, dt.datetime | None]:
        """The thumbnail's path (as `get`) and when the photo was taken (photoinfo.taken, to the second)."""
        target = self.path_for(photo)
        if not target.is_file():
            return target, self._make(photo, target)
        when = exif_date(target)  # a thumbnail made before dates were kept has none: ask the photo
        return target, when if when is not None else _seconds(taken(photo))

    def _make(self, photo: Path | str, target: Path) -> dt.datetime | None:
        """Write the thumbnail of `photo` with its date; returns the date."""
        image = decode(photo, min_side=self.size)  # JPEG draft mode: decodes at reduced scale, much faster
        image.thumbnail((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        when = _seconds(taken(photo))
        exif = Image.Exif()
        if when is not None:
            exif[DATETIME] = when.strftime(EXIF_DATE)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                image.save(f, "JPEG", quality=self.quality, exif=exif.tobytes())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return when


def _seconds(when: dt.datetime | None) -> dt.datetime | None:
    """EXIF keeps whole seconds: a fresh thumbnail's date equals the one read back from it later."""
    return when.replace(microsecond=0) if when is not None else None
