import io

import pytest
from PIL import Image

from edgeret.decode import decode, decode_bytes, sniff
from edgeret.errors import DecodeError
from edgeret.testing.photos import make_photo


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (60, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=95)
    out = decode(path)
    assert out.size == (20, 60)
    assert out.getpixel((10, 2))[2] > 200  # the blue band is now on top


def test_jpeg_draft_decodes_at_reduced_scale_but_not_below_min_side(tmp_path):
    path = make_photo(tmp_path / "big.jpg", 1, size=(2000, 1500))
    assert decode(path).size == (2000, 1500)
    small = decode(path, min_side=300)
    assert small.size == (500, 375)  # 1/4 DCT scale: the smallest that keeps both sides >= 300


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("WEBP", "webp"), ("HEIF", "heic"), ("AVIF", "avif")])
def test_formats(tmp_path, fmt, ext):
    path = make_photo(tmp_path / f"x.{ext}", 3, fmt=fmt)
    out = decode(path)
    assert out.mode == "RGB" and out.size == (320, 240)


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert decode(path).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty file"),
        (b"this is a text file, not a photo", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "corrupt"),
    ],
)
def test_bad_files_raise_decode_error_with_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=reason):
        decode(path)


def test_truncated_jpeg(tmp_path):
    good = make_photo(tmp_path / "good.jpg", 5, size=(640, 480))
    bad = tmp_path / "trunc.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DecodeError, match="truncated"):
        decode(bad)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (5000, 5000)).save(path)
    with pytest.raises(DecodeError, match="too large"):
        decode(path, max_pixels=1_000_000)


def test_png_named_jpg_still_decodes(tmp_path):
    path = make_photo(tmp_path / "actually_png.jpg", 7, fmt="PNG")
    assert decode(path).size == (320, 240)


def test_raw_without_preview_is_a_clear_failure(tmp_path):
    path = tmp_path / "fake.nef"
    tiff = io.BytesIO()
    Image.new("RGB", (16, 16)).save(tiff, "TIFF")
    path.write_bytes(tiff.getvalue())
    with pytest.raises(DecodeError, match="RAW"):
        decode(path)


def test_decode_bytes_and_sniff(tmp_path):
    data = make_photo(tmp_path / "p.jpg", 8).read_bytes()
    assert sniff(data[:32]) == "JPEG"
    assert decode_bytes(data).size == (320, 240)
    with pytest.raises(DecodeError):
        decode_bytes(b"GIF89a garbage")


def test_decode_never_writes(tmp_path):
    path = make_photo(tmp_path / "ro.jpg", 9)
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        before = sorted(tmp_path.iterdir())
        decode(path)
        assert sorted(tmp_path.iterdir()) == before
    finally:
        tmp_path.chmod(0o755)
