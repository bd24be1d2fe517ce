"""Text search from the desktop app (offscreen Qt, real widgets): type a description, press Enter, and the library's
photos come back ranked by the generated CLIP-style pair; an unusable text encoder shows an error, never a crash."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from PySide6.QtCore import Qt  # noqa: E402

from edgeret.library import Library  # noqa: E402
from edgeret.settings import Settings  # noqa: E402
from edgeret.testing import tiny_text  # noqa: E402
from edgeret.thumbnails import ThumbnailCache  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from tests.gui.helpers import WAIT, close, open_window  # noqa: E402

COLOURS = tiny_text.PHOTO_COLOURS


@pytest.fixture(scope="module")
def colour_library(tmp_path_factory, towers):
    """Six mostly-one-colour photos indexed with the image tower that pairs with the text tower (as test_text)."""
    base = tmp_path_factory.mktemp("colours")
    tiny_text.write_colour_photos(base / "photos")
    with Library(base / "lib", writable=True) as lib:
        lib.index([base / "photos"], encoder_spec=str(towers[0]), threads=1)
    return base / "lib"


@pytest.fixture
def window(qtbot, tmp_path, colour_library, towers):
    w = open_window(qtbot, tmp_path, library=colour_library, threads=1, thumb_size=64, text_encoder=str(towers[1]))
    qtbot.waitUntil(lambda: w.photo_model.rowCount() == len(COLOURS), timeout=WAIT)
    yield w
    close(w)


def type_query(qtbot, w: MainWindow, text: str) -> str:
    """Type `text` into the query pane's text box, press Enter, wait for the query to end; returns its state
    ("first stage", "stopped" or "error")."""
    box = w.query_pane.text
    box.clear()
    box.setFocus()
    qtbot.keyClicks(box, text)
    ended: list[str] = []

    def finished(gen, state):
        if gen == w.gen:  # a re-run the settings started before this query is not ours
            ended.append(state)

    def failed(gen, message):
        if gen == w.gen:
            ended.append("error")

    w.query.finished_query.connect(finished)
    w.query.failed.connect(failed)
    try:
        qtbot.keyClick(box, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: bool(ended), timeout=WAIT)
    finally:
        w.query.finished_query.disconnect(finished)
        w.query.failed.disconnect(failed)
    return ended[0]


def test_typing_a_description_ranks_that_colour_first(qtbot, window):
    assert window.query_pane.text.placeholderText() == "Describe what to find…"
    window.settings_panel.rerank.setChecked(False)
    assert type_query(qtbot, window, "something blue") == "first stage"
    results = window.result_model.results
    assert len(results) == len(COLOURS) and results[0].path.endswith("/blue.png")
    assert results[0].first_stage > results[1].first_stage
    assert all(r.p_same is None for r in results)
    assert window.tabs.currentIndex() == window.results_tab_index
    assert "ranked by similarity" in window.query_pane.status.text()
    assert "something blue" in window.query_pane.source.text()
    assert not window.query_pane.stop.isEnabled()

    window.settings_panel.k.setValue(2)  # the same worker (and loaded text encoder) serves the next query
    assert type_query(qtbot, window, "a  GREEN   tree") == "first stage"
    assert [r.path.rsplit("/", 1)[1] for r in window.result_model.results][:1] == ["green.png"]
    assert window.result_model.rowCount() == 2


def test_text_query_re_ranked_live_by_the_mllm(qtbot, window, tiny_models):
    panel = window.settings_panel
    panel.set_custom_files(*map(str, tiny_models["mlp"]))
    panel.set_reranker("mllm")
    steps = []
    window.query.results.connect(lambda gen, results, judged, total: steps.append((judged, total)))
    assert type_query(qtbot, window, "something blue") == "re-ranked"
    results = window.result_model.results
    assert len(results) == len(COLOURS) and all(0.0 <= r.p_same <= 1.0 for r in results)
    assert steps[0] == (0, len(COLOURS)) and steps[-1] == (len(COLOURS), len(COLOURS))  # first stage, then live
    assert "results checked" in window.query_pane.status.text()

    panel.kind.setCurrentIndex(panel.kind.findData("sv"))  # needs a query photo: first stage, and a notice
    assert type_query(qtbot, window, "something blue") == "first stage"
    assert all(r.p_same is None for r in window.result_model.results)
    assert "multimodal LLM only" in window.message.text.text() and window.message.isVisible()


def test_empty_text_runs_nothing(qtbot, window):
    gen = window.gen
    window.query_pane.text.setText("   ")
    qtbot.keyClick(window.query_pane.text, Qt.Key.Key_Return)
    assert window.gen == gen


def test_missing_or_unpaired_text_encoder_shows_an_error(qtbot, window, towers, tmp_path):
    panel = window.settings_panel
    panel.text_encoder.setText(str(tmp_path / "no-such-tower"))
    assert type_query(qtbot, window, "red") == "error"
    assert "no-such-tower" in window.query_pane.status.text()
    assert "no-such-tower" in window.message.text.text()
    assert window.result_model.rowCount() == 0

    other = tmp_path / "other-text"  # a tower declaring it pairs with another image encoder
    shutil.copytree(towers[1], other)
    settings = json.loads((other / "text.json").read_text())
    settings["pairs_with"] = ["some-other-image-encoder"]
    (other / "text.json").write_text(json.dumps(settings))
    panel.text_encoder.setText(str(other))
    assert type_query(qtbot, window, "red") == "error"
    assert "pairs with some-other-image-encoder" in window.message.text.text()

    panel.text_encoder.clear()  # none given and none registered for the library's image encoder
    assert type_query(qtbot, window, "red") == "error"
    assert "no registered text encoder" in window.query_pane.status.text()
    assert "--text-encoder" not in window.message.text.text()  # no terminal advice in the app

    panel.text_encoder.setText(str(towers[1]))  # and the app still works afterwards
    assert type_query(qtbot, window, "something red") == "first stage"
    assert window.result_model.results[0].path.endswith("/red.png")


def test_text_box_disabled_with_a_reason_when_nothing_pairs(qtbot, tmp_path, colour_library):
    """No text encoder given and none in the registry pairs with the library's encoder: the box says why."""
    w = MainWindow(Settings(library=colour_library, threads=1), ThumbnailCache(tmp_path / "thumbs", size=64))
    qtbot.addWidget(w)
    try:
        qtbot.waitUntil(lambda: w.photo_model.rowCount() == len(COLOURS), timeout=WAIT)
        box, reason = w.query_pane.text, w.query_pane.text_reason
        assert not box.isEnabled() and box.placeholderText() == "Text search is not available"
        assert "has no text encoder to pair with" in reason.text() and not reason.isHidden()
        assert w.query_pane.get_text.isHidden()  # nothing to download would fix it
        gen = w.gen
        box.setText("red")
        qtbot.keyClick(box, Qt.Key.Key_Return)
        assert w.gen == gen and w.result_model.rowCount() == 0  # nothing wiped, nothing run
    finally:
        close(w)
