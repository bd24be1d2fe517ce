"""The app remembers its search settings, window geometry and watch choice between runs (QSettings, an INI file)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from PySide6.QtCore import QSettings  # noqa: E402

from edgeret.settings import Settings  # noqa: E402
from edgeret.thumbnails import ThumbnailCache  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.panels import SettingsPanel  # noqa: E402
from tests.gui.helpers import close  # noqa: E402


def _prefs(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)


def test_search_settings_round_trip(qtbot, tmp_path):
    vlm, mmproj = tmp_path / "m.gguf", tmp_path / "mmproj.gguf"
    vlm.write_bytes(b"GGUF")
    mmproj.write_bytes(b"GGUF")
    panel = SettingsPanel(threads=2)
    qtbot.addWidget(panel)
    default = panel.settings()
    panel.k.setValue(7)
    panel.lam.setValue(0.25)
    panel.rerank.setChecked(False)
    panel.kind.setCurrentIndex(panel.kind.findData("mllm+sv"))
    panel.set_custom_files(str(vlm), str(mmproj))
    panel.save_to(_prefs(tmp_path))

    again = SettingsPanel(threads=2)
    qtbot.addWidget(again)
    again.restore_from(_prefs(tmp_path))
    got = again.settings()
    assert (got.k, got.lam, got.rerank, got.reranker) == (7, 0.25, False, "mllm+sv") != (
        default.k, default.lam, default.rerank, default.reranker)
    assert (got.vlm, got.mmproj) == (str(vlm), str(mmproj))

    vlm.unlink()  # a remembered file that has gone away is not offered again
    gone = SettingsPanel(threads=2)
    qtbot.addWidget(gone)
    gone.restore_from(_prefs(tmp_path))
    assert gone.settings().vlm is None and gone.settings().k == 7


def test_window_saves_on_close_and_restores(qtbot, tmp_path):
    def window() -> MainWindow:
        w = MainWindow(Settings(library=tmp_path / "lib", threads=1), ThumbnailCache(tmp_path / "thumbs", size=64),
                       watch=True, prefs=_prefs(tmp_path))
        qtbot.addWidget(w)
        return w

    w = window()
    assert w.watch_box.isChecked()
    w.settings_panel.k.setValue(33)
    w.watch_box.setChecked(False)
    w.resize(640, 480)
    close(w)
    assert (tmp_path / "gui.ini").is_file()

    w = window()
    try:
        assert w.settings_panel.k.value() == 33
        assert not w.watch_box.isChecked()  # the remembered choice wins over the default
        assert (w.width(), w.height()) == (640, 480)
    finally:
        close(w)
