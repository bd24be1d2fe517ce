"""What a user does with results (offscreen Qt, real sv re-ranking on generated photos): plain verdict badges and
the line where matches end, the compare view with sv's match lines, the full-window preview, multi-select and copy
to a folder, export, drag out, and the menu bar."""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("cv2")
pytestmark = pytest.mark.gui

from PySide6.QtCore import QItemSelectionModel, Qt  # noqa: E402
from PySide6.QtGui import QKeySequence  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from edgeret.testing.photos import snapshot, textured, warped  # noqa: E402
from edgeret.verdicts import Verdict  # noqa: E402
from gui.about import AboutDialog  # noqa: E402
from gui.item_models import VERDICT_ROLE  # noqa: E402
from gui.messages import LogDialog  # noqa: E402
from tests.gui.helpers import WAIT, close, open_window, run_query  # noqa: E402

N = 8


@pytest.fixture
def photos(tmp_path):
    """Eight photos rich in local features (sv needs texture), one of them the object the query shows re-shot."""
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(N):
        textured(i).save(root / f"t{i}.jpg", quality=90)
    return root


@pytest.fixture
def query(tmp_path):
    path = tmp_path / "q" / "q.jpg"
    path.parent.mkdir()
    warped(textured(3)).save(path, quality=88)  # t3 rotated, zoomed, cropped, tilted: the same object, re-shot
    return path


@pytest.fixture
def window(qtbot, tmp_path, tiny_encoder, photos):
    w = open_window(qtbot, tmp_path, tiny_encoder)
    w.add_folder(str(photos))
    qtbot.waitUntil(lambda: w.index_worker is None and w.photo_model.rowCount() == N, timeout=WAIT)
    yield w
    close(w)


def _sv_query(qtbot, w, query):
    w.settings_panel.set_reranker("sv")
    return run_query(qtbot, w, lambda: w.query_path(str(query)))


def test_verdict_badges_say_same_object_and_the_line_marks_where_matches_end(qtbot, window, query):
    assert window.settings_panel.kind.currentData() == "sv"  # no MLLM installed: sv is the default, and said so

    seen_unchecked = []

    def first(gen, results, judged, total):  # on the worker thread, before the GUI shows this step
        if judged == 0 and gen == window.gen:
            seen_unchecked.append(total)

    window.query.results.connect(first, Qt.ConnectionType.DirectConnection)
    updates = _sv_query(qtbot, window, query)
    assert updates[-1] == "re-ranked" and seen_unchecked == [N - 0]
    model = window.result_model
    verdicts = [model.index(r).data(VERDICT_ROLE) for r in range(model.rowCount())]
    assert verdicts[0] is Verdict.SAME and model.result(0).path.endswith("t3.jpg")
    assert set(verdicts[1:]) <= {Verdict.DIFFERENT, Verdict.MAYBE} and Verdict.DIFFERENT in verdicts
    assert window.results_grid.boundary == 1  # the line sits right after the one match
    tip = model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert "P(same object) by spatial verification: 1.00" in tip and "Similarity (first stage)" in tip
    assert "1 called Same object" in window.query_pane.status.text()

    # Before judging, a tile says "Not checked yet"; with checking off, nothing claims to be pending.
    model.set_results([type(r)(r.key, r.path, r.first_stage) for r in model.results])
    assert model.index(0).data(VERDICT_ROLE) is Verdict.UNCHECKED
    window.settings_panel.set_reranker(None)  # re-runs the query, unchecked
    qtbot.waitUntil(lambda: "not checked" in window.query_pane.status.text(), timeout=WAIT)
    assert all(model.index(r).data(VERDICT_ROLE) is None for r in range(model.rowCount()))
    assert window.results_grid.boundary is None


def test_compare_view_draws_svs_matched_points_and_the_preview_steps(qtbot, window, query):
    _sv_query(qtbot, window, query)
    window.results_grid.setCurrentIndex(window.result_model.index(0))
    compare = window.compare
    path = window.result_model.result(0).path
    qtbot.waitUntil(lambda: window.results.shown_path == path and compare.pair.query_xy is not None, timeout=WAIT)
    assert compare.matched_points() >= 12 and compare.view.line_count() == min(compare.matched_points(), 150)
    qtbot.waitUntil(lambda: "points match" in compare.headline.text())
    assert compare.badge.text() == "Same object" and not compare.badge.isHidden()
    assert "Combined score" in compare.details.text()

    compare.view.actual_size()
    assert compare.view.zoom_factor() == pytest.approx(1.0)
    compare.view.zoom(2.0)
    assert compare.view.zoom_factor() == pytest.approx(2.0)
    compare.view.fit()
    assert compare.view.fitting
    compare.show_matches.setChecked(False)
    assert compare.view.line_count() == 0
    compare.show_matches.setChecked(True)

    window.results_grid.setFocus()
    qtbot.keyClick(window.results_grid, Qt.Key.Key_Space)  # full-window preview
    assert window.central.currentWidget() is window.preview_page and compare.isVisible()
    qtbot.keyClick(window.preview_page, Qt.Key.Key_Right)
    assert window.results_grid.currentIndex().row() == 1
    qtbot.waitUntil(lambda: window.results.shown_path == window.result_model.result(1).path, timeout=WAIT)
    qtbot.keyClick(window.preview_page, Qt.Key.Key_Left)
    assert window.results_grid.currentIndex().row() == 0
    qtbot.keyClick(window.preview_page, Qt.Key.Key_Escape)
    assert window.central.currentWidget() is window.split and compare.isVisible()


def test_select_matches_copy_to_a_folder_export_and_drag_out(qtbot, window, photos, query, tmp_path):
    before = snapshot(photos)
    _sv_query(qtbot, window, query)
    model, grid = window.result_model, window.results_grid

    window.menu_actions["select_matches"].trigger()
    assert grid.selected_paths() == [model.result(0).path]
    grid.selectionModel().select(model.index(2), QItemSelectionModel.SelectionFlag.Select)  # Ctrl+click
    chosen = grid.selected_paths()
    assert len(chosen) == 2

    grid.setFocus()
    out = tmp_path / "picked"
    window.result_actions.copy_to(folder=str(out))
    qtbot.waitUntil(lambda: out.is_dir() and len(list(out.iterdir())) == 2, timeout=WAIT)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.rsplit("/", 1)[1] for p in chosen)
    qtbot.waitUntil(lambda: "copied 2 photos" in window.status_line.full_text(), timeout=WAIT)
    assert snapshot(photos) == before  # copying leaves the library's folders alone

    window.result_actions.copy_paths()
    assert QApplication.clipboard().text().splitlines() == chosen
    mime = model.mimeData([model.index(r) for r in (0, 2)])  # what a drag out to another application carries
    assert [u.toLocalFile() for u in mime.urls()] == chosen
    assert model.flags(model.index(0)) & Qt.ItemFlag.ItemIsDragEnabled

    window.result_actions.export(str(tmp_path / "results.csv"))
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == model.rowCount() and rows[0]["verdict"] == "Same object" and float(rows[0]["p_same"]) > 0.9
    window.result_actions.export(str(tmp_path / "results.json"))
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["reranker"] == "sv" and doc["query"] == str(query) and doc["thresholds"]["same"] == 0.8
    assert [r["path"] for r in doc["results"]] == [r.path for r in model.results]

    window.result_actions.open(str(tmp_path / "gone.jpg"))  # errors are shown, not swallowed
    assert window.message.isVisible() and "not there any more" in window.message.text.text()


def test_menu_bar_and_its_shortcuts(qtbot, window):
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Edit", "View", "Help"]
    acts = window.menu_actions
    assert acts["quit"].shortcut() == QKeySequence("Ctrl+Q")
    assert acts["open_query"].shortcut() == QKeySequence(QKeySequence.StandardKey.Open)
    assert acts["paste"].shortcut() == QKeySequence(QKeySequence.StandardKey.Paste)

    acts["about"].trigger()
    about = next(d for d in window.findChildren(AboutDialog) if d.isVisible())
    text = about.text.toPlainText()
    assert "onnxruntime" in text and "PySide6" in text and "clip-vit-b32" in text and "MIT" in text
    assert "Apache-2.0" in text  # the default re-ranker's licence
    about.close()

    window.say("a message worth keeping")
    acts["log"].trigger()
    log = next(d for d in window.findChildren(LogDialog) if d.isVisible())
    assert "a message worth keeping" in log.view.toPlainText()
    log.close()

    acts["preferences"].trigger()
    assert window.preferences.isVisible() and window.settings_panel.lam.isVisible()  # λ lives in Preferences
    lam = window.settings_panel.lam
    assert window.preferences.isAncestorOf(lam) and not window.side.isAncestorOf(lam)  # ... not in the side panel
    window.preferences.close()

    acts["results"].trigger()
    assert window.tabs.currentIndex() == window.results_tab_index
    acts["getting_started"].trigger()
    assert window.library_stack.currentWidget() is window.welcome

    from gui import desktop

    assert desktop.pictures_dir()  # the folder dialogs open there (Pictures, else home)
    window.activateWindow()
    qtbot.keyClick(window.results_grid, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Q quits
    qtbot.waitUntil(lambda: not window.isVisible())
