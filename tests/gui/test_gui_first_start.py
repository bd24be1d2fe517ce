"""First start as a new user meets it (offscreen Qt, real downloads from a hub on 127.0.0.1): the welcome page,
a folder remembered while the encoder is missing, a download that fails and resumes, no network at all — and the
window never grows past its screen whatever the messages say."""

from __future__ import annotations

import json
import socket

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from PySide6.QtWidgets import QLabel  # noqa: E402

from edgeret.library import Library  # noqa: E402
from edgeret.settings import DEFAULT_ENCODER  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from tests.gui.helpers import N_PHOTOS, WAIT, close, open_window  # noqa: E402
from tests.helpers.hub import Hub, hub_path, registry_toml, sha256  # noqa: E402

LONG = "model-" + "with-a-very-long-file-name-" * 6 + ".onnx"  # 170 characters, no space to wrap at


def _registry(tmp_path, encoder_dir, monkeypatch, file_name="model.onnx") -> bytes:
    """A registry whose default encoder (named like the real default) is the tiny generated one."""
    data = (encoder_dir / "model.onnx").read_bytes()
    pre = json.loads((encoder_dir / "preprocess.json").read_text())
    spec = {DEFAULT_ENCODER: {"role": "encoder", "default": True, "files": [(file_name, len(data), sha256(data))],
                              "preprocess": {k: v for k, v in pre.items() if not isinstance(v, dict)}}}
    path = tmp_path / "registry.toml"
    path.write_text(registry_toml(spec))
    monkeypatch.setenv("EDGERET_REGISTRY", str(path))
    return data


def _window(qtbot, tmp_path) -> MainWindow:
    return open_window(qtbot, tmp_path, threads=1, thumb_size=64)


def _visible_text(w) -> str:
    return "\n".join(label.text() for label in w.findChildren(QLabel) if label.isVisible())


def _fits(w, width: int) -> None:
    screen = w.screen().availableGeometry()
    assert w.width() == width and w.width() <= screen.width() and w.minimumSizeHint().width() <= screen.width()


def test_first_start_remembers_folders_and_indexes_once_the_download_resumes(qtbot, tmp_path, tiny_encoder,
                                                                            photos, monkeypatch):
    data = _registry(tmp_path, tiny_encoder, monkeypatch)
    hub = Hub()
    route = hub.add(hub_path(DEFAULT_ENCODER, "model.onnx"), data, cut_after=len(data) // 10, cut_times=99)
    monkeypatch.setenv("EDGERET_HUB_URL", hub.url)
    w = _window(qtbot, tmp_path)
    try:
        page = w.welcome
        qtbot.waitUntil(lambda: w.library_stack.currentWidget() is page)
        assert "Find the same object" in _visible_text(w) and "not installed" in page.model_list.text()
        assert page.download.text().startswith("Download models") and page.download.isEnabled()
        width = w.width()

        w.add_folder(str(photos))  # before any model: remembered, not lost
        qtbot.waitUntil(lambda: w.index_worker is None, timeout=WAIT)
        qtbot.waitUntil(lambda: "remembered" in page.folders_text.text(), timeout=WAIT)
        with Library(tmp_path / "lib") as lib:
            assert lib.roots() == [photos.resolve()]

        page.download.click()  # the connection is cut every time: the download stops, its bytes are kept
        qtbot.waitUntil(lambda: page.worker is None, timeout=WAIT)
        assert page.message.isVisible() and "Resume download" in page.message.text.text()
        assert page.download.text().startswith("Resume download")
        _fits(w, width)

        route.cut_times = 0  # the network is back
        page.download.click()
        qtbot.waitUntil(lambda: w.photo_model.rowCount() == N_PHOTOS, timeout=WAIT)  # indexed by itself
        assert route.requests[-1] is not None and route.requests[-1].startswith("bytes=")  # resumed, not restarted
        assert w.library_stack.currentWidget() is not page
        assert "edgeret models" not in _visible_text(w)
    finally:
        close(w)
        hub.close()


def test_no_network_says_so_and_names_what_to_copy(qtbot, tmp_path, tiny_encoder, monkeypatch):
    _registry(tmp_path, tiny_encoder, monkeypatch, file_name=LONG)
    with socket.socket() as s:  # nobody listens here: as good as no network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("EDGERET_HUB_URL", f"http://127.0.0.1:{port}")
    w = _window(qtbot, tmp_path)
    try:
        page = w.welcome
        width = w.width()
        page.download.click()
        qtbot.waitUntil(lambda: page.worker is None, timeout=WAIT)
        text = page.message.text.text()
        assert text.startswith("No network connection") and "Import files" in text
        assert LONG in page.message.details.toPlainText() and f"127.0.0.1:{port}" in page.message.details.toPlainText()
        page.message.details_button.click()  # the long details open: still no wider window
        assert page.message.details.isVisible()
        _fits(w, width)
        assert "edgeret models" not in _visible_text(w) and "terminal" not in _visible_text(w)

        banner = w.model_panel  # the same failure from the banner a search shows, outside any scroll area
        banner.show_missing("encoder", DEFAULT_ENCODER, "The encoder is not installed (" + "x" * 300 + ")")
        banner.download.click()
        qtbot.waitUntil(lambda: banner.worker is None, timeout=WAIT)
        assert banner.detail.text().startswith("No network connection")
        banner.details.click()
        w.error("a long failure: " + "/a-long-folder-name" * 30)  # the general message bar and the status line
        w.say("a long status: " + "/a-long-folder-name" * 30)
        qtbot.wait(50)
        _fits(w, width)
        assert "edgeret models" not in _visible_text(w)
    finally:
        close(w)


def test_an_encoder_folder_chosen_by_the_user_indexes_the_remembered_folders(qtbot, tmp_path, tiny_encoder, photos):
    w = _window(qtbot, tmp_path)
    try:
        w.add_folder(str(photos))
        qtbot.waitUntil(lambda: w.index_worker is None, timeout=WAIT)
        assert w.library_stack.currentWidget() is w.welcome
        w.preferences.set_encoder(str(tiny_encoder))  # "Use an encoder folder…"
        qtbot.waitUntil(lambda: w.photo_model.rowCount() == N_PHOTOS, timeout=WAIT)
        assert w.preferences.encoder.text() == str(tiny_encoder)
    finally:
        close(w)
