import os

from edgeret.scan import scan


def test_scan_is_sorted_recursive_and_skips_hidden(photos):
    found = [p.relative_to(photos).as_posix() for p in scan([photos])]
    assert found == [f"a/img{i:02d}.jpg" for i in range(8)] + ["b/drawing.png"] + [
        f"b/img{i:02d}.jpg" for i in range(8, 12)
    ]
    assert list(scan([photos])) == list(scan([photos]))  # deterministic


def test_scan_can_include_hidden(photos):
    assert any(".hidden" in str(p) for p in scan([photos], include_hidden=True))


def test_scan_ignores_non_images_and_survives_symlink_loops(photos):
    (photos / "notes.txt").write_text("hello")
    os.symlink(photos, photos / "a" / "loop")
    os.symlink(photos / "b", photos / "b-again")
    found = list(scan([photos]))
    assert len(found) == 13
    assert all(p.suffix in {".jpg", ".png"} for p in found)


def test_scan_accepts_single_files_and_overlapping_roots(photos):
    one = photos / "a" / "img00.jpg"
    found = list(scan([one, photos / "a", photos]))
    assert found.count(one) == 1
    assert len(found) == 13


def test_scan_of_missing_root_yields_nothing(tmp_path):
    assert list(scan([tmp_path / "nope"])) == []
