"""The desktop app driven for real (offscreen Qt): a library built from generated photos with the tiny encoder,
queries by drop, paste and context menu, live re-ranking with generated GGUF models, stop, missing-model panel."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from PIL import Image  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage  # noqa: E402

from edgeret.testing.photos import make_photo, snapshot  # noqa: E402
from edgeret.thumbnails import ThumbnailCache  # noqa: E402
from edgeret.verdicts import Thresholds  # noqa: E402
from gui.item_models import LINES_ROLE, VERDICT_ROLE  # noqa: E402
from tests.gui.helpers import N_PHOTOS, WAIT, drop, index, pixel_std, run_query  # noqa: E402


def test_index_drop_rerank_live_then_stop(qtbot, window, photos, tmp_path, tiny_vlm):
    before = snapshot(photos)
    seen = index(qtbot, window, photos)
    assert seen[-1][:2] == (N_PHOTOS, N_PHOTOS) and seen[-1][2].startswith(str(photos))
    assert "13 indexed" in window.index_panel.counts.text()
    window.library_grid.setFocus()
    qtbot.waitUntil(lambda: len(list((tmp_path / "thumbs").rglob("*.jpg"))) >= 4, timeout=WAIT)  # lazy thumbnails

    window.settings_panel.set_custom_files(*map(str, tiny_vlm))
    window.settings_panel.set_reranker("mllm")
    query = make_photo(tmp_path / "query" / "q.jpg", seed=3)  # same picture as img03.jpg, outside the library
    updates = run_query(qtbot, window, lambda: drop(window.query_pane, query))
    assert updates[-1] == "re-ranked"
    first_judged, total, first = updates[0]
    assert first_judged == 0 and total == N_PHOTOS  # first stage at once, before any re-ranking
    assert all(r.p_same is None for r in first) and first[0].path.endswith("img03.jpg")
    judged = [u[0] for u in updates[:-1]]
    # first stage; a quick sv verdict per candidate (the MLLM is cold); then one redraw per MLLM verdict
    assert judged == [0] * (1 + N_PHOTOS) + list(range(1, N_PHOTOS + 1))
    assert all(r.provisional for r in updates[N_PHOTOS][2])
    final = updates[-2][2]
    assert all(r.p_same is not None for r in final)
    assert [r.key for r in window.result_model.results] == [r.key for r in final]
    assert [r.final for r in final] == sorted((r.final for r in final), reverse=True)
    top = window.result_model.index(0)
    lines = top.data(LINES_ROLE)
    assert lines[0] == Path(final[0].path).name and lines[2].startswith("#1")  # name on a line of its own
    assert top.data(VERDICT_ROLE) is Thresholds().verdict(final[0].p_same)  # a plain verdict on the badge
    assert "P(same object) by multimodal LLM: 0." in top.data(Qt.ItemDataRole.ToolTipRole)  # numbers: tooltip
    assert window.query_pane.image.pixmap() is not None and not window.query_pane.image.pixmap().isNull()

    shot = window.grab().toImage()
    shot.save(str(tmp_path / "gui.png"))
    assert pixel_std(shot) > 20 and pixel_std(window.results_grid.viewport().grab().toImage()) > 20

    # Stop: hold the worker after its second judgement, press Esc, and it must stop right there.
    reached, go_on = threading.Event(), threading.Event()

    def hold(gen, results, judged, total):  # runs on the worker thread (direct connection)
        if judged == 2:
            reached.set()
            go_on.wait(10)

    window.query.results.connect(hold, Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(window.query.finished_query, timeout=WAIT) as done:
        drop(window, photos / "b" / "img09.jpg")  # dropping anywhere on the window works too
        qtbot.waitUntil(reached.is_set, timeout=WAIT)
        qtbot.waitUntil(lambda: window.result_model.rowCount() > 0)
        qtbot.keyClick(window.results_grid, Qt.Key.Key_Escape)
        go_on.set()
    assert done.args[1] == "stopped"
    qtbot.waitUntil(lambda: sum(r.p_same is not None for r in window.result_model.results) == 2)
    assert window.result_model.rowCount() == N_PHOTOS - 1  # the query photo itself is left out
    assert "stopped" in window.query_pane.status.text()
    assert snapshot(photos) == before  # nothing written into the photo folders


def test_paste_and_find_this_object(qtbot, window, photos):
    index(qtbot, window, photos)
    window.settings_panel.rerank.setChecked(False)
    QGuiApplication.clipboard().setImage(QImage(str(photos / "a" / "img05.jpg")))
    window.activateWindow()
    updates = run_query(qtbot, window, lambda: qtbot.keyClick(window.library_grid, Qt.Key.Key_V,
                                                              Qt.KeyboardModifier.ControlModifier))
    assert updates[-1] == "first stage"
    results = updates[-2][2]
    assert results[0].path.endswith("img05.jpg") and results[0].first_stage > 0.99
    assert window.tabs.currentIndex() == window.results_tab_index

    # Right-click → "Find this object" on the second library photo: it is the query and is left out of the results.
    row = 1
    key, path = window.photo_model.key(row), window.photo_model.path(row)
    menu = window.library_grid.menu_for(key, path)
    find = next(a for a in menu.actions() if a.text() == "Find this object")
    updates = run_query(qtbot, window, find.trigger)
    assert updates[-1] == "first stage"
    assert path not in [r.path for r in updates[-2][2]] and len(updates[-2][2]) == N_PHOTOS - 1

    # Keyboard: arrows move, Ctrl+C copies the current result's path.
    window.results_grid.setFocus()
    window.results_grid.setCurrentIndex(window.result_model.index(0))
    qtbot.keyClick(window.results_grid, Qt.Key.Key_Right)
    assert window.results_grid.currentIndex().row() == 1
    qtbot.keyClick(window.results_grid, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == window.result_model.path(1)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def tiny_registry(tmp_path, tiny_vlm, monkeypatch):
    """A registry naming the tiny GGUF pair as re-ranker "tiny-vlm", served by a local hub."""
    model, mmproj = tiny_vlm
    hub = tmp_path / "hub"
    files = []
    for p in (model, mmproj):
        dest = hub / "test" / "tiny-vlm" / "resolve" / "main" / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        files.append(f'{{ name = "{p.name}", path = "{p.name}", size = {p.stat().st_size}, sha256 = "{digest}" }}')
    registry = tmp_path / "registry.toml"
    registry.write_text(f"""schema = 1
[models.tiny-vlm]
role = "reranker"
default = true
description = "generated test model"
licence = "MIT"
repo = "test/tiny-vlm"
revision = "main"
files = [{", ".join(files)}]

[models.tiny-vlm.reranker]
model = "{model.name}"
mmproj = "{mmproj.name}"
projector = "idefics3"
image_max_tokens = 16
prompt_template = "<|im_start|>User:{{query_image}}{{candidate_image}}{{question}}<end_of_utterance>\\nAssistant:"
question = "Do these two images show the exact same object instance? Answer 1 for yes or 0 for no."
answers = ["1", "0"]
""")
    monkeypatch.setenv("EDGERET_REGISTRY", str(registry))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(hub)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("EDGERET_HUB_URL", f"http://127.0.0.1:{server.server_port}")
    yield model.parent
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("how", ["download", "import"])
def test_missing_model_panel_then_install(qtbot, window, photos, tiny_registry, how):
    index(qtbot, window, photos)
    window.settings_panel.refresh_models()
    assert "tiny-vlm (not installed" in window.settings_panel.model.currentText()
    assert window.settings_panel.kind.currentData() == "sv"  # the default is what is installed...
    assert "no multimodal LLM is installed" in window.settings_panel.reason.text()  # ...and it says so
    window.settings_panel.set_reranker("mllm")  # the user asks for the LLM anyway
    panel = window.model_panel
    updates = run_query(qtbot, window, lambda: window.query_path(str(photos / "a" / "img01.jpg")))
    assert updates[-1] == "first stage"  # without the model, first-stage results still come
    assert panel.isVisible() and "tiny-vlm" in panel.message.text() and "not installed" in panel.message.text()
    assert window.photo_model.rowCount() == N_PHOTOS  # browsing is untouched
    assert all(window.result_model.verdict(r) is None for r in range(window.result_model.rowCount()))  # none pending

    updates = run_query(qtbot, window, lambda: window.settings_panel.set_reranker("sv"))  # switching re-runs
    assert updates[-1] == "re-ranked" and not panel.isVisible()  # ...and the banner for the LLM goes
    updates = run_query(qtbot, window, lambda: window.settings_panel.set_reranker("mllm"))
    assert updates[-1] == "first stage" and panel.isVisible()
    window.tabs.setCurrentIndex(window.library_tab_index)
    assert window.library_grid.isVisible()

    with qtbot.waitSignal(window.query.finished_query, timeout=WAIT) as done:  # installing re-runs the query
        if how == "download":
            assert panel.download.isVisible()
            panel.download.click()
        else:
            panel.import_from(str(tiny_registry))
    assert done.args[1] == "re-ranked"
    assert not panel.isVisible()
    assert panel.last_progress and panel.last_progress[0] == panel.last_progress[1] > 0
    assert "tiny-vlm (installed)" in window.settings_panel.model.currentText()
    assert all(r.p_same is not None for r in window.result_model.results)


def test_thumbnail_cache_keys_and_location(tmp_path, photos):
    cache = ThumbnailCache(tmp_path / "thumbs", size=64)
    photo = photos / "a" / "img00.jpg"
    before = snapshot(photos)
    thumb = cache.get(photo)
    assert thumb.is_relative_to(tmp_path / "thumbs") and max(Image.open(thumb).size) == 64
    assert cache.get(photo) == thumb and cache.cached(photo) == thumb
    make_photo(photo, seed=50, size=(300, 200))  # the photo changes: a new entry, never the stale one
    assert cache.cached(photo) is None and cache.get(photo) != thumb
    assert ThumbnailCache(tmp_path / "thumbs", size=128).path_for(photo) != cache.path_for(photo)
    assert snapshot(photos).keys() == before.keys()  # nothing created next to the photos


def test_cli_gui_command_parses_without_qt_import():
    import argparse

    from edgeret.cli import common as cli_common
    from edgeret.cli import gui as cli_gui

    parser = argparse.ArgumentParser()
    cli_gui.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["gui", "--library", "/tmp/lib", "--threads", "3"])
    assert args.func is cli_gui.cmd_gui
    s = cli_common.settings(args)  # the app opens on the CLI's settings: one parser for both
    assert (s.library, s.threads) == (Path("/tmp/lib"), 3)


def test_python_m_gui_app_takes_the_cli_options(capsys):
    from gui import app

    with pytest.raises(SystemExit) as e:  # `python -m gui.app` parses with `edgeret gui`'s own parser
        app.main(["--threads", "many"])
    assert e.value.code == 2 and "edgeret gui" in capsys.readouterr().err
