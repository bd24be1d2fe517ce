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


def test_a_thumbnail_keeps_the_photos_date(tmp_path):
    from edgeret.photoinfo import exif_date
    from edgeret.thumbnails import ThumbnailCache

    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = "2021:07:14 09:30:05"
    shot = make_photo(tmp_path / "shot.jpg", 1, exif=exif.tobytes())
    plain = make_photo(tmp_path / "plain.png", 2)
    os.utime(plain, (1_600_000_000.25, 1_600_000_000.25))
    cache = ThumbnailCache(tmp_path / "thumbs", size=32)
    for photo, when in ((shot, dt.datetime(2021, 7, 14, 9, 30, 5)), (plain, dt.datetime.fromtimestamp(1_600_000_000))):
        thumb, made = cache.dated(photo)
        assert made == when and exif_date(thumb) == when  # written into the thumbnail when it is made
        assert cache.dated(photo) == (thumb, when) and cache.get(photo) == thumb  # and read back from it
    Image.open(thumb).save(thumb, "JPEG")  # a thumbnail made before dates were kept: the photo is asked
    assert exif_date(thumb) is None and cache.dated(plain) == (thumb, dt.datetime.fromtimestamp(1_600_000_000))
