"""The app prepares the re-ranker's visual tokens in the background: every photo, carried on after a restart,
a status line and a Pause button; queries meanwhile stay right, and a cold one shows sv verdicts first."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from PySide6.QtCore import QSettings  # noqa: E402

from edgeret.library import Library  # noqa: E402
from edgeret.rerankers import open_mllm  # noqa: E402
from edgeret.settings import Settings  # noqa: E402
from edgeret.thumbnails import ThumbnailCache  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from tests.gui.helpers import N_PHOTOS, WAIT, close, drop, index, run_query  # noqa: E402


def _window(qtbot, tmp_path, tiny_encoder) -> MainWindow:
    prefs = QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat)
    w = MainWindow(Settings(library=tmp_path / "lib", encoder=str(tiny_encoder), threads=2),
                   ThumbnailCache(tmp_path / "thumbs", size=96), prefs=prefs)
    w.show()  # not qtbot.addWidget: the test closes and deletes each window itself (one is replaced mid-test)
    qtbot.waitExposed(w)
    return w


def _store(tmp_path, tiny_vlm):
    lib = Library(tmp_path / "lib")
    return lib, open_mllm(lib, vlm=tiny_vlm[0], mmproj=tiny_vlm[1], threads=1)


def _ready(w: MainWindow) -> str:
    return w.prepare.widget.label.text()


def _wait_all_ready(qtbot, w: MainWindow) -> None:
    """Until every photo is prepared; a timeout says what the status line, the process and its log showed."""
    want = f"Re-ranking ready for {N_PHOTOS} of {N_PHOTOS} photos"

    def check():
        bg = w.prepare._bg
        assert _ready(w) == want, (f"status line {_ready(w)!r}; preparing: {w.prepare.running}; last report: "
                                   f"{bg.status if bg else None}; its log: {bg.log_tail if bg else None}")

    qtbot.waitUntil(check, timeout=WAIT)


def test_tokens_appear_for_every_photo_and_a_restart_carries_on(qtbot, tmp_path, photos, tiny_encoder, tiny_vlm):
    w = _window(qtbot, tmp_path, tiny_encoder)
    try:
        index(qtbot, w, photos)
        assert not w.prepare.running  # the registry's re-ranker is not installed: nothing to prepare for
        w.settings_panel.set_custom_files(*map(str, tiny_vlm))
        w.settings_panel.set_reranker("mllm")
        _wait_all_ready(qtbot, w)
        assert w.prepare.widget.isVisible() and not w.prepare.widget.pause_button.isVisible()
    finally:
        close(w)
    lib, rr = _store(tmp_path, tiny_vlm)
    try:
        assert len(rr.store) == N_PHOTOS
        for key, _ in lib.photos()[:5]:
            rr.store.delete(key)  # as if the last session had stopped five photos short
    finally:
        rr.close()
        lib.close()

    w = _window(qtbot, tmp_path, tiny_encoder)  # the remembered re-ranker; it carries on by itself
    try:
        _wait_all_ready(qtbot, w)
    finally:
        close(w)
    lib, rr = _store(tmp_path, tiny_vlm)
    try:
        assert len(rr.store) == N_PHOTOS
    finally:
        rr.close()
        lib.close()


def test_pause_then_a_cold_query_gets_sv_verdicts_first_and_right_results(qtbot, tmp_path, photos, tiny_encoder,
                                                                         tiny_vlm):
    w = _window(qtbot, tmp_path, tiny_encoder)
    try:
        index(qtbot, w, photos)
        w.prepare.widget.pause_button.setChecked(True)  # held before it starts: the library stays cold
        w.settings_panel.set_custom_files(*map(str, tiny_vlm))
        w.settings_panel.set_reranker("mllm")
        qtbot.waitUntil(lambda: _ready(w).endswith("· paused"), timeout=WAIT)
        assert w.prepare.widget.pause_button.text() == "Resume"

        cold = run_query(qtbot, w, lambda: drop(w.query_pane, photos / "a" / "img03.jpg"))
        assert cold[-1] == "re-ranked"
        previews = [u for u in cold[:-1] if any(r.provisional for r in u[2])]
        assert previews and previews[0][0] == 0  # sv verdicts shown while no MLLM verdict has landed yet
        assert all(r.p_same is not None for r in previews[-1][2])  # every candidate had one
        final = cold[-2][2]
        assert cold[-2][0] == cold[-2][1] == N_PHOTOS - 1 and not any(r.provisional for r in final)

        w.prepare.widget.pause_button.setChecked(False)  # resume; query again while it prepares
        during = run_query(qtbot, w, lambda: drop(w.query_pane, photos / "a" / "img03.jpg"))[-2][2]
        _wait_all_ready(qtbot, w)
        warm = run_query(qtbot, w, lambda: drop(w.query_pane, photos / "a" / "img03.jpg"))
        assert not any(r.provisional for u in warm[:-1] for r in u[2])  # everything stored: the MLLM at once
        for results in (during, warm[-2][2]):
            assert [r.key for r in results] == [r.key for r in final]
            assert [r.p_same for r in results] == pytest.approx([r.p_same for r in final], abs=2e-3)
    finally:
        close(w)
