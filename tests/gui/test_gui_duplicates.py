"""The Duplicates tab driven for real (offscreen Qt): a library holding copies of one photo, "Find duplicates" on a
worker thread with progress, the group shown side by side with its original first and marked, nothing touched."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from PIL import Image  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from edgeret.library import Library  # noqa: E402
from edgeret.settings import Settings  # noqa: E402
from edgeret.testing import tiny_text  # noqa: E402
from edgeret.testing.photos import make_photo, snapshot  # noqa: E402
from edgeret.thumbnails import ThumbnailCache  # noqa: E402
from gui.item_models import LINES_ROLE  # noqa: E402
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


def test_find_duplicates_lists_the_group_original_first(qtbot, window, dup_library):
    root = dup_library[0]
    before = snapshot(root)
    view = window.duplicates
    window.tabs.setCurrentIndex(window.duplicates_tab_index)
    assert view.find.text() == "Find duplicates" and view.group_list.count() == 0
    shown = []
    view.bar.valueChanged.connect(lambda v: shown.append((v, view.bar.maximum())))
    qtbot.mouseClick(view.find, Qt.MouseButton.LeftButton)
    assert view.worker is not None and not view.find.isEnabled() and view.cancel.isVisible()
    qtbot.waitUntil(lambda: view.worker is None, timeout=WAIT)
    assert view.find.isEnabled() and not view.bar.isVisible() and not view.cancel.isVisible()
    assert shown and shown[-1][0] == shown[-1][1] > 0  # progress reached its end

    assert view.group_list.count() == 1
    assert view.group_list.item(0).text() == "3 photos · p0.jpg"
    assert "1 groups, 2 extra copies" in view.status.text()
    members = [view.model.member(r) for r in range(view.model.rowCount())]
    names = [m.path.replace(str(root) + "/", "") for m in members]
    assert names[0] == "a/p0.jpg" and set(names[1:]) == {"b/p0-copy.jpg", "b/p0-small.jpg"}
    assert members[0].original and not any(m.original for m in members[1:])
    lines = [view.model.index(r).data(LINES_ROLE) for r in range(3)]
    assert lines[0][0].startswith("★ original") and lines[0][1].startswith("640×480")
    assert all(line[0].startswith("copy · cos ") for line in lines[1:])
    assert view.grid.isVisible()

    # the right-click actions are the ones every grid offers: nothing that deletes
    menu = view.grid.menu_for(members[1].key, members[1].path)
    assert [a.text() for a in menu.actions() if a.text()] == ["Find this object", "Open", "Reveal in file manager",
                                                               "Copy path"]
    assert snapshot(root) == before  # nothing moved, deleted or written next to the photos


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
    assert view.group_list.count() == 1 and view.group_list.item(0).text() == "3 photos · p0.jpg"
    assert view.groups[0].kind == "same_picture"
