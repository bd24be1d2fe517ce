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


def taken(path: str | Path) -> dt.datetime | None:
    """The capture time of `path`, or its modification time when it has no EXIF date; None if it cannot be read."""
    try:
        with Image.open(path) as im:  # lazy: opening reads the header, not the pixels
            exif = im.getexif()
            raw = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
        if raw:
            return dt.datetime.strptime(str(raw).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except (OSError, ValueError, SyntaxError) as e:  # not an image Pillow opens, or a malformed date
        log.debug("no EXIF date for %s: %s", path, e)
    try:
        return dt.datetime.fromtimestamp(Path(path).stat().st_mtime)
    except OSError:
        return None
