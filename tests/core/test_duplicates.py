"""Duplicate groups with real parts: generated photos and copies, a real ONNX encoder, real USearch, real sv."""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeret.cli import duplicates as cli_duplicates
from edgeret.duplicates import find_duplicates, group_rows, knn, move_duplicates, open_verifier, undo_moves
from edgeret.errors import Cancelled, UsageError
from edgeret.library import Library
from edgeret.testing.photos import make_photo


@pytest.fixture
def dup_photos(tmp_path):
    """Eight distinct photos, d0 with an exact copy, a re-encoded copy and a small PNG, d1 with a resized copy."""
    root = tmp_path / "photos"
    for i in range(8):
        make_photo(root / "a" / f"d{i}.jpg", seed=i, size=(640, 480), quality=95)
    d0 = Image.open(root / "a" / "d0.jpg")
    (root / "b").mkdir()
    shutil.copy(root / "a" / "d0.jpg", root / "b" / "d0-copy.jpg")  # not copy2: a newer mtime, like most copies
    d0.save(root / "b" / "d0-q50.jpg", quality=50)
    (root / "c").mkdir()
    d0.resize((320, 240)).save(root / "c" / "d0-small.png")
    Image.open(root / "a" / "d1.jpg").resize((400, 300)).save(root / "c" / "d1-half.jpg", quality=80)
    return root


EXPECTED = [{"a/d0.jpg", "b/d0-copy.jpg", "b/d0-q50.jpg", "c/d0-small.png"}, {"a/d1.jpg", "c/d1-half.jpg"}]


def _index(tmp_path, roots, encoder, **kw):
    lib = Library(tmp_path / "lib", writable=True, **kw)
    lib.index(roots, encoder_spec=str(encoder), threads=1)
    return lib


def _rel(groups, root):
    return [{str(Path(m.path).relative_to(root)) for m in g.members} for g in groups]


@pytest.mark.parametrize("exact_below", [50_000, 1], ids=["exact", "usearch"])
def test_copies_group_and_distinct_photos_do_not(tmp_path, dup_photos, thumb_encoder, exact_below):
    with _index(tmp_path, [dup_photos], thumb_encoder, exact_below=exact_below) as lib:
        assert lib.refresh_index().kind == ("exact" if exact_below > 1 else "hnsw")
        seen = []
        groups = find_duplicates(lib, threshold=0.95, k=5, progress=lambda d, t, s: seen.append((d, t)))
    assert _rel(groups, dup_photos) == EXPECTED
    assert seen[-1] == (12, 12)
    g0 = groups[0]
    # the same resolution as its exact copy and the q50 re-encode, the larger file, and the older of the twins
    assert g0.original.path == str(dup_photos / "a" / "d0.jpg") and g0.members[0].original
    small = next(m for m in g0.members if m.path.endswith("d0-small.png"))
    assert (small.width, small.height, small.size) == (320, 240, (dup_photos / "c" / "d0-small.png").stat().st_size)
    assert small.similarity > 0.95 and not small.original
    d = g0.as_dict()
    assert d["size"] == 4 and d["members"][0]["date"][:2] == "20"
    assert groups[1].original.path == str(dup_photos / "a" / "d1.jpg")  # larger resolution wins over a newer file


def test_many_identical_copies_form_one_group_even_with_one_neighbour(tmp_path, thumb_encoder):
    root = tmp_path / "p"
    src = make_photo(root / "orig.jpg", seed=5, size=(200, 150))
    for i in range(6):
        shutil.copy(src, root / f"copy{i}.jpg")
    make_photo(root / "other.jpg", seed=6, size=(200, 150))
    with _index(tmp_path, [root], thumb_encoder) as lib:
        groups = find_duplicates(lib, threshold=0.95, k=1)
        assert [len(g.members) for g in groups] == [7]
        with pytest.raises(Cancelled):
            find_duplicates(lib, cancel=lambda: True)


def _textured(path, seed, size=(640, 480)):
    im = Image.open(make_photo(path.with_suffix(".png"), seed=seed, size=size))
    noise = np.random.default_rng(seed).normal(0, 25, (size[1], size[0], 3))
    Image.fromarray(np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8)).save(path, quality=92)
    path.with_suffix(".png").unlink()
    return path


def _noise(path, seed):
    """Same smooth layout, different fine texture: near-identical thumbnails, different photos."""
    grad = np.linspace(40, 220, 640, dtype=np.float32)[None, :, None] * np.array([1, 0.7, 0.4], np.float32)
    px = np.broadcast_to(grad, (480, 640, 3)) + np.random.default_rng(seed).normal(0, 50, (480, 640, 3))
    Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(path, quality=90)


def test_verify_rescues_a_borderline_shot_and_rejects_a_borderline_lookalike(tmp_path, thumb_encoder):
    """A 7.5 % crop is the same picture with or without a verifier; a 40 % crop (the same object, not the same
    picture) and two noise photos (near-identical thumbnails, different photos) sit in the verifier's band: sv
    confirms the first and rejects the second."""
    root = tmp_path / "v"
    root.mkdir()
    p = _textured(root / "p.jpg", seed=3)
    Image.open(p).crop((24, 18, 616, 462)).save(root / "p-crop.jpg", quality=90)  # cosine ~0.995
    Image.open(p).crop((128, 96, 512, 384)).save(root / "p-zoom.jpg", quality=90)
    _noise(root / "n1.jpg", 1)
    _noise(root / "n2.jpg", 2)  # cosine ~0.9995 to n1, yet another photo
    make_photo(root / "q.jpg", seed=11, size=(640, 480))
    with _index(tmp_path, [root], thumb_encoder) as lib:
        vec = {name: lib.vector_of(lib.key_for_path(root / name)) for name in ("p.jpg", "p-zoom.jpg")}
        zoom = float(vec["p.jpg"] @ vec["p-zoom.jpg"])
        threshold, margin = (zoom + 0.9996) / 2, (0.9996 - zoom) / 2 + 0.004  # both pairs inside the band
        plain = find_duplicates(lib, threshold=threshold, k=4)
        verifier = open_verifier(lib)  # no MLLM installed in the tests: classical spatial verification
        assert verifier.name == "sv"
        checked = find_duplicates(lib, threshold=threshold, k=4, verifier=verifier, margin=margin)
    names = [(g.kind, {m.path.rsplit("/", 1)[1] for m in g.members}) for g in plain]
    assert names == [("same_picture", {"p.jpg", "p-crop.jpg"}), ("similar", {"n1.jpg", "n2.jpg"})]
    names = [(g.kind, {m.path.rsplit("/", 1)[1] for m in g.members}) for g in checked]
    assert names == [("same_picture", {"p.jpg", "p-crop.jpg"}), ("similar", {"p.jpg", "p-zoom.jpg"})]
    shot = checked[1]
    assert shot.verified >= 1 and shot.original.path.endswith("p.jpg") and shot.copies[0].p_same >= 0.5


def test_knn_and_groups_on_clustered_vectors_match_brute_force():
    from usearch.index import Index

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((300, 64)).astype(np.float32)
    x = np.repeat(centres, 4, axis=0) + rng.normal(0, 0.05, (1200, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    nbr, sim = knn(x, 3)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    np.testing.assert_array_equal(np.sort(nbr, 1), np.sort(np.argsort(-s, 1)[:, :3], 1))
    keys = np.arange(1200, dtype=np.int64) * 7 + 3  # keys are not row numbers, as with catalog ids
    index = Index(ndim=64, metric="cos", dtype="f32")
    index.add(keys.astype(np.uint64), x)
    hn, _ = knn(x, 3, index, keys)
    recall = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(hn, nbr, strict=True)])
    assert recall > 0.95
    groups = group_rows(x, threshold=0.9, k=5, index=index, keys=keys)
    assert sorted(sorted(g) for g in groups) == [list(range(4 * c, 4 * c + 4)) for c in range(300)]


def test_move_and_undo_never_lose_a_file(tmp_path, dup_photos, thumb_encoder):
    before = {p: p.read_bytes() for p in dup_photos.rglob("*") if p.is_file()}
    dest = tmp_path / "dups"
    (dest / "photos" / "b").mkdir(parents=True)
    (dest / "photos" / "b" / "d0-q50.jpg").write_bytes(b"already here")  # a name clash at the destination
    with _index(tmp_path, [dup_photos], thumb_encoder) as lib:
        groups = find_duplicates(lib, threshold=0.95)
        roots = lib.roots()
    with pytest.raises(UsageError, match="inside the library"):
        move_duplicates(groups, dup_photos / "b" / "dups", roots=roots)
    report = move_duplicates(groups, dest, roots=roots)
    assert len(report.moved) == 4 and not report.skipped
    assert (dest / "photos" / "b" / "d0-q50 (1).jpg").read_bytes() == before[dup_photos / "b" / "d0-q50.jpg"]
    assert (dest / "photos" / "c" / "d1-half.jpg").is_file() and (dup_photos / "a" / "d0.jpg").is_file()
    moved_out = {p for p in before if not p.exists()}
    assert moved_out == {dup_photos / r for r in ("b/d0-copy.jpg", "b/d0-q50.jpg", "c/d0-small.png", "c/d1-half.jpg")}
    log = json.loads(Path(report.log).read_text())
    assert all(e["done"] for e in log["moves"]) and len(log["moves"]) == 4
    undone = undo_moves(report.log)
    assert len(undone.moved) == 4 and not undone.skipped
    assert {p: p.read_bytes() for p in dup_photos.rglob("*") if p.is_file()} == before
    assert (dest / "photos" / "b" / "d0-q50.jpg").read_bytes() == b"already here"
    assert undo_moves(report.log).moved == []  # a second undo finds nothing left to do


def _cli(argv):
    parser = argparse.ArgumentParser(prog="edgeret")
    cli_duplicates.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_duplicates_json_move_and_undo(tmp_path, dup_photos, thumb_encoder, capsys):
    _index(tmp_path, [dup_photos], thumb_encoder).close()
    lib = str(tmp_path / "lib")
    assert _cli(["duplicates", "--library", lib, "--json", "--threshold", "0.95"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["photos"] == 12 and [g["size"] for g in out["groups"]] == [4, 2]
    assert _cli(["duplicates", "--library", lib, "--move-to", str(tmp_path / "moved"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["moved"]["files"] == 4 and out["moved"]["library_updated"]
    with Library(lib) as opened:
        assert opened.catalog.vector_count() == 8  # the library forgot the moved copies
    assert _cli(["duplicates", "--undo", out["moved"]["log"]]) == 0
    assert "restored 4 files" in capsys.readouterr().out
    assert (dup_photos / "c" / "d0-small.png").is_file()
    assert _cli(["duplicates", "--library", lib]) == 0  # text output; the watcher/index would pick the files up again
    assert "0 groups" in capsys.readouterr().out
