import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeret.decode import decode
from edgeret.encoders import ImageEncoder
from edgeret.errors import EncoderMismatch, LibraryBusy, LibraryError, ModelMissing
from edgeret.library import Library
from edgeret.testing.photos import make_photo, snapshot


@pytest.fixture
def lib(tmp_path):
    with Library(tmp_path / "lib", writable=True) as library:
        yield library


def _index(lib, encoder, roots=()):
    return lib.index(roots, encoder_spec=str(encoder), threads=1, batch_size=4)


def test_index_then_reindex_only_processes_changes(lib, photos, tiny_encoder):
    r = _index(lib, tiny_encoder, [photos])
    assert (r.indexed, r.unchanged, r.failed) == (13, 0, [])
    assert _index(lib, tiny_encoder).unchanged == 13  # no folders given: the library's own roots

    make_photo(photos / "a" / "img03.jpg", seed=1234)  # changed content
    (photos / "b" / "img09.jpg").unlink()
    make_photo(photos / "b" / "new.jpg", seed=555)
    r = _index(lib, tiny_encoder)
    assert (r.indexed, r.unchanged, r.removed) == (2, 11, 1)
    assert lib.status()["indexed"] == 13


def test_touched_file_with_same_content_is_not_reencoded(lib, photos, tiny_encoder):
    _index(lib, tiny_encoder, [photos])
    p = photos / "a" / "img00.jpg"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    r = _index(lib, tiny_encoder)
    assert r.indexed == 1 and r.unchanged == 12  # rewritten row, vector copied from the identical content


def test_moved_photo_keeps_its_key(lib, photos, tiny_encoder):
    _index(lib, tiny_encoder, [photos])
    old = photos / "a" / "img02.jpg"
    key = lib.catalog.id_for_path(str(old))
    shutil.move(old, photos / "b" / "renamed.jpg")
    r = _index(lib, tiny_encoder)
    assert (r.moved, r.removed, r.indexed) == (1, 0, 0)
    assert lib.catalog.id_for_path(str(photos / "b" / "renamed.jpg")) == key


def test_bad_files_are_recorded_and_never_stop_the_run(lib, photos, tiny_encoder):
    (photos / "a" / "empty.jpg").write_bytes(b"")
    (photos / "a" / "text.png").write_text("not a picture")
    good = (photos / "a" / "img01.jpg").read_bytes()
    (photos / "a" / "trunc.jpg").write_bytes(good[: len(good) // 3])
    r = _index(lib, tiny_encoder, [photos])
    reasons = dict(r.failed)
    assert r.indexed == 13 and len(reasons) == 3
    assert "empty" in reasons[str(photos / "a" / "empty.jpg")]
    assert "not an image" in reasons[str(photos / "a" / "text.png")]
    assert "truncated" in reasons[str(photos / "a" / "trunc.jpg")]
    st = lib.status()
    assert st["failed"] == 3 and {f["path"] for f in st["failures"]} == set(reasons)
    assert _index(lib, tiny_encoder).unchanged == 16  # failures are not retried until the file changes


def test_photo_folders_are_never_written(lib, photos, tiny_encoder):
    before = snapshot(photos)
    for d in [photos, *[p for p in photos.rglob("*") if p.is_dir()]]:
        d.chmod(0o555)
    try:
        r = _index(lib, tiny_encoder, [photos])
        assert r.indexed == 13 and not r.failed
    finally:
        for d in [photos, *[p for p in photos.rglob("*") if p.is_dir()]]:
            d.chmod(0o755)
    assert snapshot(photos) == before


def test_search_finds_the_photo_itself_first(lib, photos, tiny_encoder):
    _index(lib, tiny_encoder, [photos])
    enc = lib.load_encoder(str(tiny_encoder))
    query = photos / "b" / "img10.jpg"
    hits = lib.search_images([decode(query)], enc, k=5)[0]
    assert hits[0].path == str(query) and hits[0].score == pytest.approx(1.0, abs=2e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(lib.search_images([decode(query)], enc, k=100)[0]) == 13


def test_changing_encoder_is_refused_without_reindex(lib, photos, tiny_encoder, tiny_fmap_encoder):
    _index(lib, tiny_encoder, [photos])
    with pytest.raises(EncoderMismatch, match="--reindex"):
        _index(lib, tiny_fmap_encoder)
    with pytest.raises(EncoderMismatch):
        lib.load_encoder(str(tiny_fmap_encoder))
    r = lib.index(encoder_spec=str(tiny_fmap_encoder), reindex=True, threads=1)
    assert r.indexed == 13
    assert lib.encoder_spec == str(tiny_fmap_encoder)
    assert lib.load_encoder().id == ImageEncoder(tiny_fmap_encoder).id


def test_second_writer_gets_library_busy(lib, tmp_path):
    code = (
        "import sys\nfrom edgeret.library import Library\nfrom edgeret.errors import LibraryBusy\n"
        f"try:\n    Library({str(lib.path)!r}, writable=True)\nexcept LibraryBusy as e:\n"
        "    print(e)\n    sys.exit(3)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "busy" in p.stdout
    with pytest.raises(LibraryBusy):
        Library(lib.path, writable=True)
    Library(lib.path).close()  # readers are never blocked


def test_opening_a_missing_library_for_search_is_a_clear_error(tmp_path):
    with pytest.raises(LibraryError, match="no library at"):
        Library(tmp_path / "nothing")


def test_hnsw_index_matches_exact_and_stays_in_step(tmp_path, photos, tiny_encoder):
    with Library(tmp_path / "lib", writable=True, exact_below=0) as lib:
        _index(lib, tiny_encoder, [photos])
        ids, mat = lib.catalog.vectors()
        hnsw = lib.refresh_index()
        assert hnsw.kind == "hnsw" and len(hnsw) == 13
        files = sorted(f.name for f in lib.path.glob("vectors-*"))
        name = f"vectors-{lib.catalog.vectors_version()}.usearch"
        assert files == [name, f"{name}.orphans.json"]  # the index and its list of keys searched exactly
        found = hnsw.search(mat, 3)
        assert [int(n.keys[0]) for n in found] == ids.tolist()

        (photos / "a" / "img00.jpg").unlink()
        make_photo(photos / "a" / "img05.jpg", seed=777)
        make_photo(photos / "c" / "extra.jpg", seed=888)
        _index(lib, tiny_encoder)
        ids, mat = lib.catalog.vectors()
        hnsw = lib.refresh_index()
        assert sorted(int(k) for k in hnsw.index.keys) == ids.tolist()
        assert [int(n.keys[0]) for n in hnsw.search(mat, 3)] == ids.tolist()
        assert len(list(lib.path.glob("vectors-*"))) == 2
        exact = lib.search_vectors(mat[:2], k=13)
    with Library(tmp_path / "lib", exact_below=10**6) as reader:
        brute = reader.search_vectors(mat[:2], k=13)
        assert reader.refresh_index().kind == "exact"
    for a, b in zip(brute, exact, strict=True):
        assert a[0].key == b[0].key
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=2e-3)


def test_search_can_exclude_the_query_photo(lib, photos, tiny_encoder):
    _index(lib, tiny_encoder, [photos])
    key = lib.catalog.id_for_path(str(photos / "a" / "img01.jpg"))
    hits = lib.search_vectors(lib.vector_of(key)[None], k=4, exclude_keys=[key])[0]
    assert len(hits) == 4 and key not in {h.key for h in hits}


def test_a_missing_root_keeps_its_photos(lib, photos, tiny_encoder, tmp_path):
    _index(lib, tiny_encoder, [photos])
    moved_away = tmp_path / "unplugged"
    photos.rename(moved_away)  # the drive is unplugged
    r = _index(lib, tiny_encoder)
    assert r.removed == 0 and r.missing_roots == [str(photos)]
    assert lib.status()["indexed"] == 13


def test_catalog_keeps_the_photos_own_size_not_the_decoded_one(lib, tmp_path, tiny_encoder):
    make_photo(tmp_path / "big" / "p.jpg", 1, size=(1600, 1200))
    _index(lib, tiny_encoder, [tmp_path / "big"])
    w, h = lib.catalog.db.execute("SELECT width, height FROM images").fetchone()
    assert (w, h) == (1600, 1200)


def test_folders_added_before_the_encoder_are_indexed_by_the_next_run(tmp_path, photos, tiny_encoder):
    """The app remembers a folder while the encoder is missing; a later plain index() takes it in."""
    with Library(tmp_path / "lib", writable=True) as lib:
        with pytest.raises(ModelMissing):
            lib.index([photos], encoder_spec="clip-vit-b32")  # not installed in the isolated models dir
        assert lib.roots() == []  # a failed run remembers nothing by itself...
        lib.add_roots([photos])  # ...the app asks for it
        with pytest.raises(LibraryError):
            lib.add_roots([tmp_path / "nowhere"])
    with Library(tmp_path / "lib", writable=True) as lib:  # after a restart
        assert lib.roots() == [photos.resolve()] and lib.status()["indexed"] == 0
        assert lib.index(encoder_spec=str(tiny_encoder)).indexed == 13
