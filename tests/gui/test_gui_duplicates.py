"""The Duplicates tab driven for real (offscreen Qt): a library holding copies of one photo, "Find duplicates" on a
worker thread with progress, groups listed by kind with their evidence, the members side by side, the original
first and kept; keep another, move the others out of the library, undo, the counts following each step."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from pathlib import Path  # noqa: E402

from PIL import Image  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from edgeret.library import Library  # noqa: E402
from edgeret.settings import Settings  # noqa: E402
from edgeret.testing import tiny_text  # noqa: E402
from edgeret.testing.photos import make_photo, snapshot  # noqa: E402
from edgeret.thumbnails import ThumbnailCache  # noqa: E402
from gui.duplicates_view import SMALLEST  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from tests.gui.helpers import WAIT, close, open_window  # noqa: E402


@pytest.fixture(scope="module")
def thumb_encoder(tmp_path_factory):
    return tiny_text.write_thumbnail_encoder(tmp_path_factory.mktemp("thumb") / "thumb")


@pytest.fixture
def dup_library(tmp_path, thumb_encoder):
    """Six distinct photos; p0 also as an exact copy and as a half-size copy in another folder."""
    root = tmp_path / "photos"
    for i in range(6):
        make_photo(root / "a" / f"p{i}.jpg", seed=i, size=(640, 480), quality=95)
    (root / "b").mkdir()
    shutil.copy(root / "a" / "p0.jpg", root / "b" / "p0-copy.jpg")
    Image.open(root / "a" / "p0.jpg").resize((320, 240)).save(root / "b" / "p0-small.jpg", quality=90)
    with Library(tmp_path / "lib", writable=True) as lib:
        lib.index([root], encoder_spec=str(thumb_encoder), threads=1)
    return root, tmp_path / "lib"


@pytest.fixture
def window(qtbot, tmp_path, dup_library):
    w = open_window(qtbot, tmp_path, library=dup_library[1], threads=1, thumb_size=64)
    yield w
    close(w)


def _find(qtbot, view) -> None:
    qtbot.mouseClick(view.find, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.worker is None, timeout=WAIT)


def test_find_duplicates_lists_groups_by_kind_original_first(qtbot, window, dup_library):
    root = dup_library[0]
    before = snapshot(root)
    view = window.duplicates
    window.tabs.setCurrentIndex(window.duplicates_tab_index)
    assert view.find.text() == "Find duplicates" and view.group_list.count() == 0 and not view.move.isEnabled()
    shown = []
    view.bar.valueChanged.connect(lambda v: shown.append((v, view.bar.maximum())))
    qtbot.mouseClick(view.find, Qt.MouseButton.LeftButton)
    assert view.worker is not None and not view.find.isEnabled() and view.cancel.isVisible()
    qtbot.waitUntil(lambda: view.worker is None, timeout=WAIT)
    assert view.find.isEnabled() and not view.bar.isVisible() and not view.cancel.isVisible()
    assert shown and shown[-1][0] == shown[-1][1] > 0  # progress reached its end

    # a heading per kind, then its groups; the first group is selected
    assert [view.group_list.item(r).text() for r in range(view.group_list.count())] == [
        "The same picture (1)", "3 photos · p0.jpg"]
    assert view.group_list.currentRow() == 1
    assert "0 groups of identical files, 1 of the same picture (2 extra copies), 0 of similar shots" in \
        view.status.text()
    members = [view.model.member(r) for r in range(view.model.rowCount())]
    names = [m.path.replace(str(root) + "/", "") for m in members]
    assert names[0] == "a/p0.jpg" and set(names[1:]) == {"b/p0-copy.jpg", "b/p0-small.jpg"}
    # side by side, large, with the evidence; only the proposed original is kept by default
    cards = view.cards
    assert [c.member.path for c in cards] == [m.path for m in members]
    assert [c.keep.isChecked() for c in cards] == [True, False, False]
    qtbot.waitUntil(lambda: all(c.image.pixmap() is not None and not c.image.pixmap().isNull() for c in cards),
                    timeout=WAIT)
    assert max(cards[0].image.pixmap().width(), cards[0].image.pixmap().height()) > 200  # large, not a tile
    # the previews share the room there is: on a wide window all side by side, larger; on a narrow one they keep
    # their smallest size and the row scrolls
    bar = view.scroll.horizontalScrollBar()
    window.resize(1600, 1000)
    qtbot.waitUntil(lambda: cards[0].image.width() > SMALLEST + 30 and bar.maximum() == 0, timeout=WAIT)
    assert len({c.image.width() for c in cards}) == 1
    assert max(cards[0].image.pixmap().width(), cards[0].image.pixmap().height()) == cards[0].image.width()
    window.resize(900, 700)
    qtbot.waitUntil(lambda: cards[0].image.width() == SMALLEST and bar.maximum() > 0, timeout=WAIT)
    captions = {Path(c.member.path).name: c.caption.text() for c in cards}
    assert captions["p0.jpg"].startswith("★ proposed original") and "640×480" in captions["p0.jpg"]
    assert captions["p0-copy.jpg"].startswith("identical file")
    assert "bits apart, thumbnails" in captions["p0-small.jpg"]
    assert "Proposed original: p0.jpg (same pixel size, largest file" in view.group_title.text() or \
        "Proposed original: p0.jpg (same pixel and file size, oldest" in view.group_title.text()
    assert view.move.isEnabled() and not view.undo.isEnabled()
    # the right-click actions are the ones every grid offers: nothing that deletes
    menu = view.grid.menu_for(members[1].key, members[1].path)
    assert [a.text() for a in menu.actions() if a.text()] == ["Find this object", "Open", "Reveal in file manager",
                                                               "Copy path"]
    # a large card offers the same, for its own photo
    copied = []
    view.grid.copy_requested.connect(copied.append)
    view.grid.selectAll()  # an earlier selection of all tiles does not turn it into "Copy 3 paths"
    card_menu = view.card_menu(cards[2])
    assert [a.text() for a in card_menu.actions() if a.text()] == ["Find this object", "Open",
                                                                    "Reveal in file manager", "Copy path"]
    next(a for a in card_menu.actions() if a.text() == "Copy path").trigger()
    assert copied == [cards[2].member.path]
    assert snapshot(root) == before  # finding moves, deletes and writes nothing next to the photos


def test_keep_move_and_undo(qtbot, window, dup_library, tmp_path):
    root, lib_path = dup_library
    before = snapshot(root)
    view = window.duplicates
    _find(qtbot, view)
    cards = {Path(c.member.path).name: c for c in view.cards}
    cards["p0.jpg"].keep.setChecked(False)  # keep the small copy instead of the proposed original
    cards["p0-small.jpg"].keep.setChecked(True)
    dest = tmp_path / "moved-out"
    view.move_to(root / "inside")  # inside the library: refused, nothing moved
    qtbot.waitUntil(lambda: view.mover is None, timeout=WAIT)
    assert "inside the library" in view.status.text() and snapshot(root) == before
    view.move_to(dest)
    assert view.mover is not None and not view.move.isEnabled()
    qtbot.waitUntil(lambda: view.mover is None, timeout=WAIT)
    assert not (root / "a" / "p0.jpg").exists() and not (root / "b" / "p0-copy.jpg").exists()
    assert (root / "b" / "p0-small.jpg").is_file()
    assert sorted(p.name for p in dest.rglob("*.jpg")) == ["p0-copy.jpg", "p0.jpg"]
    # the counts follow at once: the group is gone, the undo is offered
    assert view.group_list.count() == 0 and view.groups == []
    assert view.status.text().startswith("moved 2 photos to ") and "no duplicates found" in view.status.text()
    assert view.undo.isEnabled()
    with Library(lib_path) as lib:  # the library caught up: it forgot the moved photos
        assert lib.photo_count() == 6
    qtbot.mouseClick(view.undo, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.mover is None, timeout=WAIT)
    assert snapshot(root).keys() == before.keys()
    assert view.status.text().startswith("put 2 photos back") and not view.undo.isEnabled()
    assert [view.group_list.item(r).text() for r in range(view.group_list.count())] == [
        "The same picture (1)", "3 photos · p0.jpg"]
    with Library(lib_path) as lib:
        assert lib.photo_count() == 8
    qtbot.waitUntil(lambda: window.photo_model.rowCount() == 8, timeout=WAIT)  # the Library tab followed


def test_an_empty_library_reports_instead_of_failing(qtbot, tmp_path):
    w = MainWindow(Settings(library=tmp_path / "empty-lib", threads=1), ThumbnailCache(tmp_path / "thumbs", size=64))
    qtbot.addWidget(w)
    try:
        w.duplicates.start()
        qtbot.waitUntil(lambda: w.duplicates.worker is None, timeout=WAIT)
        assert "error: the library is empty" in w.duplicates.status.text()
        assert w.duplicates.group_list.count() == 0
    finally:
        close(w)


def test_verify_lets_a_re_ranker_judge_borderline_pairs(qtbot, window, dup_library):
    """The threshold set at the resized copy's own similarity makes that pair borderline: sv (no MLLM installed
    here) is asked, and the group is unchanged: the copies are the same picture by their signatures anyway."""
    root, lib_path = dup_library
    with Library(lib_path) as lib:
        keys, matrix = lib.catalog.vectors()
        row = {int(k): i for i, k in enumerate(keys)}
        a, b = (row[lib.catalog.id_for_path(str(root / p))] for p in ("a/p0.jpg", "b/p0-small.jpg"))
        cos = float(matrix[a].astype("float32") @ matrix[b].astype("float32"))
    view = window.duplicates
    view.threshold.setValue(min(cos, 1.0))
    view.verify.setChecked(True)
    qtbot.mouseClick(view.find, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.worker is None, timeout=WAIT)
    assert "borderline pairs judged by sv" in view.status.text(), view.status.text()
    assert view.group_list.count() == 2 and view.group_list.item(1).text() == "3 photos · p0.jpg"
    assert view.groups[0].kind == "same_picture"
