"""The app keeps the library in step with its folders while open: a photo copied in shows up in the grid."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from edgeret.settings import Settings  # noqa: E402
from edgeret.testing.photos import make_photo  # noqa: E402
from edgeret.thumbnails import ThumbnailCache  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from tests.gui.helpers import WAIT, close, index  # noqa: E402


def test_watching_window_picks_up_new_and_deleted_photos(qtbot, tmp_path, photos, tiny_encoder):
    w = MainWindow(Settings(library=tmp_path / "lib", encoder=str(tiny_encoder), threads=1),
                   ThumbnailCache(tmp_path / "thumbs", size=64), watch=True)
    qtbot.addWidget(w)
    w.show()
    try:
        assert w.watch_box.isChecked() and w.watcher is None  # no library yet: nothing to follow
        index(qtbot, w, photos)  # after this run the watcher follows the new folder
        qtbot.waitUntil(lambda: w.watcher is not None and w.watcher.roots == [photos], timeout=WAIT)
        make_photo(photos / "b" / "new_one.jpg", seed=4242)
        qtbot.waitUntil(lambda: w.photo_model.rowCount() == 14, timeout=WAIT)
        (photos / "a" / "img00.jpg").unlink()
        qtbot.waitUntil(lambda: w.photo_model.rowCount() == 13, timeout=WAIT)
        w.watch_box.setChecked(False)
        assert w.watcher is None
    finally:
        close(w)
