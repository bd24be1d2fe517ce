"""Linux file names are bytes: names that are not valid UTF-8 are indexed, stored losslessly and shown safely."""

import os
import shutil

import pytest

from edgeret.decode import decode
from edgeret.encoders import ImageEncoder
from edgeret.fsnames import display, from_sql, to_sql
from edgeret.library import Library
from edgeret.testing.photos import make_photo

RAW = b"caf\xe9 \xff.jpg"  # Latin-1 "é" and a byte that is never UTF-8


@pytest.fixture
def odd_photos(tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        make_photo(root / f"img{i}.jpg", seed=i)
    odd_dir = os.path.join(os.fsencode(root), b"dir\xfe")
    os.mkdir(odd_dir)
    make_photo(root / "tmp.jpg", seed=7)
    os.rename(root / "tmp.jpg", os.path.join(odd_dir, RAW))
    return root, os.fsdecode(os.path.join(odd_dir, RAW))


def test_names_round_trip_through_the_catalog_form():
    name = os.fsdecode(b"/p/" + RAW)
    assert isinstance(to_sql(name), bytes) and from_sql(to_sql(name)) == name
    assert to_sql("/p/café.jpg") == "/p/café.jpg"  # valid names keep their TEXT form
    assert display(name) == "/p/caf\\xe9 \\xff.jpg" and display(name).encode("utf-8")


def test_a_non_utf8_name_is_indexed_found_and_kept(tmp_path, odd_photos, tiny_encoder):
    root, odd = odd_photos
    with Library(tmp_path / "lib", writable=True) as lib:
        r = lib.index([root], encoder_spec=str(tiny_encoder), threads=1, batch_size=2)
        assert (r.indexed, r.failed) == (4, [])
        assert lib.index(encoder_spec=str(tiny_encoder), threads=1).unchanged == 4  # every rerun too
        hits = lib.search_images([decode(odd)], ImageEncoder(tiny_encoder), k=1)[0]
        assert hits[0].path == odd and os.fsencode(hits[0].path).endswith(RAW)
        assert [p for _, p in lib.photos(os.path.dirname(odd))] == [odd]
        assert len(lib.photos(root)) == 4

        moved = os.path.join(os.path.dirname(odd), os.fsdecode(b"\xe0moved.jpg"))
        key = lib.catalog.id_for_path(odd)
        shutil.move(odd, moved)
        r = lib.index(encoder_spec=str(tiny_encoder), threads=1)
        assert (r.moved, r.removed) == (1, 0) and lib.catalog.id_for_path(moved) == key

        (root / "img0.jpg").unlink()
        os.unlink(moved)
        assert lib.index(encoder_spec=str(tiny_encoder), threads=1).removed == 2
        assert lib.status()["indexed"] == 2


def test_a_non_utf8_root_and_failure_are_listed_and_forgotten(tmp_path, tiny_encoder):
    root = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"ph\xf6tos"))
    make_photo(tmp_path / "x.jpg", seed=1)
    os.mkdir(root)
    os.rename(tmp_path / "x.jpg", os.path.join(root, "x.jpg"))
    with open(os.path.join(root, os.fsdecode(b"bad\xff.png")), "wb") as f:
        f.write(b"not a picture")
    with Library(tmp_path / "lib", writable=True) as lib:
        lib.index([root], encoder_spec=str(tiny_encoder), threads=1)
        st = lib.status()
        assert st["roots"] == [root] and st["indexed"] == 1
        assert [os.path.basename(f["path"]) for f in st["failures"]] == [os.fsdecode(b"bad\xff.png")]
        assert lib.remove_root(root) == 2 and lib.status()["indexed"] == 0
