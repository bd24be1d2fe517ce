"""`edgeret duplicates` through the real command line: kinds and evidence in --json (today's members[].path shape
kept), the text report, and --move-to moving copies only, never similar shots."""

import json
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

from edgeret.cli import main
from edgeret.testing.photos import make_photo, make_variant, snapshot, textured, with_exif


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _library(tmp_path, thumb_encoder, capsys) -> tuple[Path, str]:
    root = tmp_path / "photos"
    root.mkdir()
    textured(1).save(root / "tmp.jpg", quality=92)
    (root / "pic.jpg").write_bytes(with_exif((root / "tmp.jpg").read_bytes()))
    (root / "tmp.jpg").unlink()
    for kind in ("resize25", "webp", "crop5"):
        make_variant(root / "pic.jpg", kind, root / f"pic-{kind}", seed=1)
    shutil.copy(root / "pic.jpg", root / "pic-copy.jpg")
    scene = Image.open(make_photo(tmp_path / "scene.png", seed=7, size=(900, 600)))
    scene.crop((0, 0, 720, 540)).save(root / "shot-a.jpg", quality=90)
    b = scene.crop((60, 40, 780, 580))
    ImageDraw.Draw(b).ellipse((300, 200, 420, 320), fill=(200, 30, 30))
    b.save(root / "shot-b.jpg", quality=90)
    textured(5).save(root / "other.jpg", quality=90)
    lib = str(tmp_path / "lib")
    assert _run(capsys, "index", str(root), "--library", lib, "--encoder", str(thumb_encoder), "--json")[0] == 0
    return root, lib


def test_json_carries_kinds_and_evidence_and_move_leaves_similar_shots(tmp_path, thumb_encoder, capsys):
    root, lib = _library(tmp_path, thumb_encoder, capsys)
    code, out = _run(capsys, "duplicates", "--library", lib, "--json", "--threshold", "0.8")
    assert code == 0
    d = json.loads(out)
    assert d["kinds"] == {"identical": 0, "same_picture": 1, "similar": 1}
    same, similar = d["groups"]
    assert same["kind"] == "same_picture" and similar["kind"] == "similar"
    names = {Path(m["path"]).name for m in same["members"]}  # today's shape: groups[].members[].path
    assert names == {"pic.jpg", "pic-copy.jpg", "pic-resize25.jpg", "pic-webp.webp", "pic-crop5.jpg"}
    assert same["original"] == same["members"][0]["path"] and same["members"][0]["original"]
    assert same["why_original"] == "same pixel and file size, oldest file"  # pic.jpg over its later copy
    assert Path(same["original"]).name == "pic.jpg"
    for m in same["members"][1:]:
        assert {"similarity", "distance", "correlation", "colour", "p_same", "identical_to"} <= m.keys()
        assert m["distance"] <= 22 and m["correlation"] >= 0.95
    copy = next(m for m in same["members"] if m["path"].endswith("pic-copy.jpg"))
    assert Path(copy["identical_to"]).name == "pic.jpg"
    assert {Path(m["path"]).name for m in similar["members"]} == {"shot-a.jpg", "shot-b.jpg"}
    assert similar["members"][1]["similarity"] >= 0.8 and similar["members"][1]["correlation"] < 0.95

    code, out = _run(capsys, "duplicates", "--library", lib, "--threshold", "0.8")
    assert code == 0
    assert "0 groups of identical files, 1 of the same picture (4 extra copies), 1 of similar shots" in out
    assert "group 1: the same picture, 5 photos; original: " in out and "group 2: similar shots, 2 photos" in out
    assert "same file" in out and "hash " in out and "thumb " in out

    before = snapshot(root)
    code, out = _run(capsys, "duplicates", "--library", lib, "--threshold", "0.8", "--move-to",
                     str(tmp_path / "moved"), "--json")
    assert code == 0
    moved = json.loads(out)["moved"]
    assert moved["files"] == 4 and moved["library_updated"]
    gone = {Path(p).name for p in before} - {p.name for p in root.iterdir()}
    assert len(gone) == 4 and "shot-b.jpg" not in gone and "shot-a.jpg" not in gone  # similar shots stay
    assert _run(capsys, "duplicates", "--undo", moved["log"])[0] == 0
    assert snapshot(root).keys() == before.keys()


def test_status_counts_picture_hashes(tmp_path, thumb_encoder, capsys):
    _, lib = _library(tmp_path, thumb_encoder, capsys)
    code, out = _run(capsys, "status", "--library", lib)
    assert code == 0 and "8 of 8 photos have a picture hash" in out and "without re-encoding" not in out
    st = json.loads(_run(capsys, "status", "--library", lib, "--json")[1])
    assert st["pictures"] == st["photos"] == 8
