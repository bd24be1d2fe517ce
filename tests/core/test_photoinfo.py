"""The date a tile shows: EXIF DateTimeOriginal when the photo has one, else the file's modification time."""

import datetime as dt
import os

from PIL import Image

from edgeret.photoinfo import DATETIME_ORIGINAL, EXIF_IFD, taken
from edgeret.testing.photos import make_photo


def test_exif_date_then_mtime(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = "2021:07:14 09:30:05"
    shot = make_photo(tmp_path / "shot.jpg", 1, exif=exif.tobytes())
    assert taken(shot) == dt.datetime(2021, 7, 14, 9, 30, 5)

    plain = make_photo(tmp_path / "plain.png", 2)
    os.utime(plain, (1_600_000_000, 1_600_000_000))
    assert taken(plain) == dt.datetime.fromtimestamp(1_600_000_000)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert taken(broken) is not None  # its mtime
    assert taken(tmp_path / "gone.jpg") is None
