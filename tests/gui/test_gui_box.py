"""Boxing the query photo in the app: a real mouse drag on the query image searches the boxed region, a drag on a
handle adjusts it, Clear box brings back the whole-photo results, and the box stays drawn while results come in."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from PIL import Image  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402

from edgeret.library import Library  # noqa: E402
from gui.query_image import QueryImage  # noqa: E402
from tests.gui.helpers import WAIT, drop, index  # noqa: E402


def _screen(widget: QueryImage, x: float, y: float) -> QPoint:
    """Where image pixel (x, y) is drawn in the widget."""
    f = widget._frame()
    s = f.width() / widget._size[0]
    return QPointF(f.left() + x * s, f.top() + y * s).toPoint()


def _drag(qtbot, widget, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, 6):  # through the points between, as a hand would
        qtbot.mouseMove(widget, start + (end - start) * (i / 5))
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=end)


def _search(qtbot, window, start) -> list:
    with qtbot.waitSignal(window.query.finished_query, timeout=WAIT):
        start()
    qtbot.waitUntil(lambda: window.result_model.rowCount() > 0, timeout=WAIT)
    return [r.path for r in window.result_model.results]


def test_drag_a_box_on_the_query_then_adjust_and_clear_it(qtbot, window, photos, tmp_path, tiny_encoder):
    # the box is under test, not split queries (tests/core/test_regions.py): the library is set to regions off
    with Library(window.settings.library, writable=True) as lib:
        lib.index(encoder_spec=str(tiny_encoder), regions="off", threads=1)
    index(qtbot, window, photos)
    window.settings_panel.rerank.setChecked(False)
    scene = Image.open(photos / "b" / "img11.jpg").convert("RGB").resize((800, 600))
    scene.paste(Image.open(photos / "a" / "img04.jpg").convert("RGB"), (400, 300))  # 320x240: to 720, 540
    scene.save(tmp_path / "scene.png")
    pane, image = window.query_pane, window.query_pane.image
    whole = _search(qtbot, window, lambda: drop(pane, tmp_path / "scene.png"))
    assert whole[0].endswith("img11.jpg") and image.box() is None and not pane.clear_box.isEnabled()

    seen = []
    image.box_changed.connect(seen.append)
    boxed = _search(qtbot, window, lambda: _drag(qtbot, image, _screen(image, 405, 305), _screen(image, 715, 535)))
    assert len(seen) == 1  # one search per gesture: on release, not per mouse move
    x0, y0, x1, y1 = image.box()
    assert abs(x0 - 405) <= 6 and abs(y0 - 305) <= 6 and abs(x1 - 715) <= 6 and abs(y1 - 535) <= 6
    assert boxed[0].endswith("img04.jpg") and boxed != whole
    assert window.last_query["box"] == image.box() and pane.clear_box.isEnabled()
    assert image.box() is not None  # still drawn now the boxed results are in

    # Drag the bottom-right handle out to the scene's corner: the box grows and the search runs again.
    before = image.box()
    again = _search(qtbot, window, lambda: _drag(qtbot, image, _screen(image, *before[2:]), _screen(image, 800, 600)))
    assert image.box()[:2] == before[:2] and image.box()[2] > before[2] + 50 and len(seen) == 2
    assert window.last_query["box"] == image.box() and again[0].endswith("img04.jpg")

    # A click without a drag changes nothing; Clear box searches the whole photo again.
    qtbot.mouseClick(image, Qt.MouseButton.LeftButton, pos=_screen(image, 100, 100))
    assert len(seen) == 2
    cleared = _search(qtbot, window, pane.clear_box.click)
    assert image.box() is None and seen[-1] is None and cleared == whole and not pane.clear_box.isEnabled()


def test_find_this_object_opens_a_library_photo_ready_to_be_boxed(qtbot, window, photos):
    index(qtbot, window, photos)
    window.settings_panel.rerank.setChecked(False)
    row = next(r for r in range(window.photo_model.rowCount()) if window.photo_model.path(r).endswith("img04.jpg"))
    key, path = window.photo_model.key(row), window.photo_model.path(row)
    find = next(a for a in window.library_grid.menu_for(key, path).actions() if a.text() == "Find this object")
    whole = _search(qtbot, window, find.trigger)
    image = window.query_pane.image
    assert image.has_image() and image.box() is None and path not in whole
    boxed = _search(qtbot, window, lambda: _drag(qtbot, image, _screen(image, 20, 20), _screen(image, 160, 120)))
    assert image.box() is not None and window.last_query["key"] == key
    assert path not in boxed and boxed != whole  # still left out of its own results; the region ranks differently
