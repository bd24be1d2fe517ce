"""The same picture told apart from similar shots: real decode, real signatures, real catalog, real ONNX encoder."""

import shutil
import sqlite3
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from edgeret import picture
from edgeret.duplicates import IDENTICAL, SAME_PICTURE, SIMILAR, classify_pairs, find_duplicates
from edgeret.library import Library
from edgeret.testing.photos import VARIANTS, make_photo, make_variant, textured, with_exif


def _original(path: Path, seed: int, size=(640, 480)) -> Path:
    """A JPEG with EXIF metadata (so that stripping it changes the bytes, not the pixels)."""
    textured(seed, size).save(path.with_suffix(".tmp.jpg"), quality=92)
    path.write_bytes(with_exif(path.with_suffix(".tmp.jpg").read_bytes()))
    path.with_suffix(".tmp.jpg").unlink()
    return path


def _shots(folder: Path, seed: int) -> tuple[Path, Path]:
    """Two shots of one scene: the camera moved, someone walked in, the light changed (cosine ~0.82 with the
    thumbnail encoder, thumbnails correlating ~0.68 at best)."""
    scene = Image.open(make_photo(folder / "scene.png", seed=seed, size=(900, 600)))
    (folder / "scene.png").unlink()
    a = scene.crop((0, 0, 720, 540))
    b = scene.crop((60, 40, 780, 580))
    ImageDraw.Draw(b).ellipse((300, 200, 420, 320), fill=(200, 30, 30))
    b = ImageEnhance.Brightness(b).enhance(1.1)
    a.save(folder / f"shot{seed}-a.jpg", quality=90)
    b.save(folder / f"shot{seed}-b.jpg", quality=90)
    return folder / f"shot{seed}-a.jpg", folder / f"shot{seed}-b.jpg"


@pytest.fixture
def library_photos(tmp_path):
    root = tmp_path / "photos"
    (root / "orig").mkdir(parents=True)
    for seed in (1, 2):
        src = _original(root / "orig" / f"p{seed}.jpg", seed)
        for kind in VARIANTS:
            make_variant(src, kind, root / kind / f"p{seed}-{kind}", seed=seed)
    shutil.copy(root / "orig" / "p1.jpg", root / "orig" / "p1-copy.jpg")
    shutil.copy(root / "orig" / "p1.jpg", root / "orig" / "p1-copy2.jpg")
    (root / "shots").mkdir()
    _shots(root / "shots", 7)
    for seed in range(10, 14):  # unrelated photos
        textured(seed).save(root / "orig" / f"other{seed}.jpg", quality=90)
    return root


def _names(group) -> set[str]:
    return {Path(m.path).name for m in group.members}


def test_every_version_of_a_picture_is_the_same_picture_and_shots_are_only_similar(tmp_path, library_photos,
                                                                                    thumb_encoder):
    with Library(tmp_path / "lib", writable=True) as lib:
        lib.index([library_photos], encoder_spec=str(thumb_encoder), threads=1)
        assert lib.status()["pictures"] == lib.status()["photos"] == 2 * (len(VARIANTS) + 1) + 2 + 2 + 4
        groups = find_duplicates(lib, threshold=0.8, k=10)  # the shots' cosine is ~0.82 with this encoder
    kinds = [g.kind for g in groups]
    assert kinds == sorted(kinds, key=[IDENTICAL, SAME_PICTURE, SIMILAR].index)
    same = [g for g in groups if g.kind == SAME_PICTURE]
    expected = [{f"p{s}.jpg", *(Path(make_variant_name(s, k)).name for k in VARIANTS)} for s in (1, 2)]
    expected[0] |= {"p1-copy.jpg", "p1-copy2.jpg"}
    assert sorted(map(_names, same), key=len, reverse=True) == expected
    for g in same:
        # chosen as ever: the largest resolution, then the largest file (here the lossless PNG conversion)
        assert g.original.path.endswith(".png") and (g.original.width, g.original.height) == (640, 480)
        assert g.why.startswith("same pixel size, largest file")
        for m in g.copies:
            if m.identical_to is not None:
                continue
            assert m.distance is not None and m.distance <= picture.SAME_DISTANCE
            assert m.correlation >= picture.SAME_CORRELATION and m.colour <= picture.SAME_COLOUR
    everything_same = set().union(*map(_names, same))
    assert not everything_same & {"shot7-a.jpg", "shot7-b.jpg"}  # different shots are never the same picture
    similar = [g for g in groups if g.kind == SIMILAR]
    assert any(_names(g) >= {"shot7-a.jpg", "shot7-b.jpg"} for g in similar)
    # a similar group holds each picture once: through its original, never one of its copies
    copies_of_copy_groups = {Path(m.path).name for g in same for m in g.copies}
    assert not copies_of_copy_groups & set().union(*map(_names, similar))
    assert not [g for g in groups if g.kind == IDENTICAL]  # p1's exact copies are part of p1's picture group
    one = next(g for g in same if "p1.jpg" in _names(g))
    twins = {Path(m.path).name: m.identical_to for m in one.members if Path(m.path).name.startswith("p1")}
    assert {k: v and Path(v).name for k, v in twins.items() if v} == {"p1-copy.jpg": "p1.jpg", "p1-copy2.jpg": "p1.jpg"}


def make_variant_name(seed: int, kind: str) -> str:
    suffix = {"png": ".png", "webp": ".webp", "heic": ".heic"}.get(kind, ".jpg")
    return f"p{seed}-{kind}{suffix}"


def test_identical_files_alone_form_an_identical_group(tmp_path, thumb_encoder):
    root = tmp_path / "p"
    root.mkdir()
    src = _original(root / "a.jpg", 3)
    shutil.copy(src, root / "b.jpg")
    textured(4).save(root / "c.jpg", quality=90)
    with Library(tmp_path / "lib", writable=True) as lib:
        lib.index([root], encoder_spec=str(thumb_encoder), threads=1)
        groups = find_duplicates(lib, threshold=0.99)
    assert [(g.kind, _names(g)) for g in groups] == [(IDENTICAL, {"a.jpg", "b.jpg"})]
    assert groups[0].copies[0].identical_to == groups[0].original.path
    assert groups[0].why == "same pixel and file size, oldest file"  # shutil.copy: a newer mtime


def test_a_library_from_schema_2_gets_its_hashes_on_the_next_index_without_re_encoding(tmp_path, thumb_encoder,
                                                                                          capsys):
    from edgeret.cli import main

    root = tmp_path / "p"
    root.mkdir()
    src = _original(root / "a.jpg", 5)
    make_variant(src, "resize50", root / "a-half")
    textured(6).save(root / "b.jpg", quality=90)
    lib_dir = tmp_path / "lib"
    with Library(lib_dir, writable=True) as lib:
        lib.index([root], encoder_spec=str(thumb_encoder), threads=1)
    with sqlite3.connect(lib_dir / "catalog.sqlite") as db:  # what edgeret before migration 3 left behind
        db.execute("ALTER TABLE images DROP COLUMN phash")
        db.execute("ALTER TABLE images DROP COLUMN thumb")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
        before = db.execute("SELECT id, vector, vec_version FROM images ORDER BY id").fetchall()
    with Library(lib_dir) as lib:  # a reader migrates (the folder is writable) and sees no hashes yet
        assert lib.catalog.schema_version() == 3
        assert (lib.status()["pictures"], lib.status()["photos"]) == (0, 3)
        assert SAME_PICTURE not in [g.kind for g in find_duplicates(lib, threshold=0.999)]  # no hashes yet
    assert main(["status", "--library", str(lib_dir)]) == 0
    assert "0 of 3 photos have a picture hash" in capsys.readouterr().out
    with Library(lib_dir, writable=True) as lib:
        report = lib.index(threads=1)
        assert (report.indexed, report.pictures) == (0, 3)
        after = lib.catalog.db.execute("SELECT id, vector, vec_version FROM images ORDER BY id").fetchall()
        assert after == before  # no photo was re-encoded
        assert lib.status()["pictures"] == 3
        groups = find_duplicates(lib, threshold=0.999)
        assert lib.index(threads=1).pictures == 0  # done once
    assert [(g.kind, _names(g)) for g in groups] == [(SAME_PICTURE, {"a.jpg", "a-half.jpg"})]
    assert main(["status", "--library", str(lib_dir)]) == 0
    assert "3 of 3 photos have a picture hash" in capsys.readouterr().out


def test_signature_is_imagehash_phash_and_compares_versions():
    im = textured(8, (400, 300))
    sig = picture.signature(im)
    assert len(sig.thumb) == picture.THUMB_BYTES and -(1 << 63) <= sig.phash < 1 << 63
    # imagehash's own phash of the image the signature starts from (a 400 px photo is box-averaged by 2 first)
    assert sig.phash % (1 << 64) == int(str(imagehash.phash(im.reduce(2))), 16)
    half = picture.signature(im.resize((200, 150), Image.Resampling.BILINEAR))
    e = picture.compare(sig, half)
    assert e.same and e.distance <= 4 and e.correlation > 0.98
    crop = picture.signature(im.crop((0, 15, 380, 300)))  # 5 % off two sides
    e = picture.compare(sig, crop)
    assert e.same, e
    relit = picture.compare(sig, picture.signature(ImageEnhance.Brightness(im).enhance(1.25)))
    assert relit.correlation > 0.99 and relit.colour > picture.SAME_COLOUR and not relit.same  # an edit
    other = picture.compare(sig, picture.signature(textured(9, (400, 300))))
    assert not other.same and other.distance > picture.SAME_DISTANCE // 2


def test_bucket_pairs_find_near_hashes_and_skip_crowded_buckets():
    rng = np.random.default_rng(0)
    h = rng.integers(-(1 << 63), (1 << 63) - 1, 500, dtype=np.int64)
    near = h[:50] ^ np.int64(0b1001)  # two bits off: always shares a quarter
    i, j = picture.bucket_pairs(np.concatenate([h, near]))
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert {(r, 500 + r) for r in range(50)} <= found
    assert len(found) < 200  # random hashes rarely share 16 bits
    assert (picture.distances(h[:50], near) == 2).all()
    # groups of many sizes that share only the hash's last quarter (each other quarter 1 bit off): every table is
    # searched, whatever the bucket sizes met before it
    base = rng.integers(0, 1 << 16, 12, dtype=np.int64)
    rows, want = [], set()
    for g, size in enumerate(range(2, 14)):
        first = len(rows)
        for m in range(size):
            flip = sum(1 << (16 * q + (m + q) % 16) for q in (1, 2, 3)) if m else 0
            rows.append(((int(base[g]) | (g << 20) | (g << 40)) ^ flip) - (1 << 63))
        want |= {(first + x, first + y) for x in range(size) for y in range(x + 1, size)}
    i, j = picture.bucket_pairs(np.array(rows, np.int64))
    assert want <= set(zip(i.tolist(), j.tolist(), strict=True))
    flat = np.zeros(300, np.int64)  # 300 identical hashes: a crowded bucket, skipped
    assert len(picture.bucket_pairs(flat, max_bucket=256)[0]) == 0
    assert len(picture.bucket_pairs(flat[:10])[0]) == 45


def test_a_bucket_mate_far_in_bits_is_judged_only_as_an_embedding_neighbour():
    im = textured(8, (400, 300))
    a = picture.signature(im)
    half = picture.signature(im.resize((200, 150), Image.Resampling.BILINEAR))
    # a's own thumbnail under a hash 20 bits off that still shares a's first and last 16 bits: a chance bucket-mate
    far = picture.Picture(a.phash ^ sum(1 << b for b in range(16, 36)), a.thumb)
    sigs = [a, half, far]
    hashes = np.array([s.phash for s in sigs], np.int64)
    assert picture.distances(hashes[:1], hashes[2:])[0] == 20 > picture.BUCKET_DISTANCE

    def pictures(rows):
        return {r: sigs[r] for r in rows}

    none = np.full((3, 1), -1), np.full((3, 1), -np.inf, np.float32)
    assert classify_pairs(*none, hashes, pictures, 0.95).same == [(0, 1)]  # the resize, from the buckets alone
    nbr, sim = np.array([[2], [-1], [0]]), np.array([[0.5], [-np.inf], [0.5]], np.float32)
    assert sorted(classify_pairs(nbr, sim, hashes, pictures, 0.95).same) == [(0, 1), (0, 2)]
