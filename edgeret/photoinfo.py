"""When a photo was taken: EXIF DateTimeOriginal (read from the header only), else the file's modification time."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
DATETIME = 0x0132
EXIF_DATE = "%Y:%m:%d %H:%M:%S"  # how EXIF writes a date and time


def taken(path: str | Path) -> dt.datetime | None:
    """The capture time of `path`, or its modification time when it has no EXIF date; None if it cannot be read."""
    when = exif_date(path)
    if when is not None:
        return when
    try:
        return dt.datetime.fromtimestamp(Path(path).stat().st_mtime)
    except OSError:
        return None


def exif_date(path: str | Path) -> dt.datetime | None:
    """The EXIF DateTimeOriginal (else DateTime) of `path`, read from the header only; None without one."""
    try:
        with Image.open(path) as im:  # lazy: opening reads the header, not the pixels
            exif = im.getexif()
            raw = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
        if raw:
            return dt.datetime.strptime(str(raw).strip("\x00 ")[:19], EXIF_DATE)
    except (OSError, ValueError, SyntaxError) as e:  # not an image Pillow opens, or a malformed date
        log.debug("no EXIF date for %s: %s", path, e)
    return None
