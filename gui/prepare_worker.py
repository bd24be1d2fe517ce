"""The app's background preparation of the re-ranker's visual tokens (edgeret.prepare_bg), and its status line.

Runs while the re-ranker's model is installed: after indexing, at start-up (carrying on where the last session
stopped) and after the watcher indexed new photos. The process runs at the lowest CPU priority, so searching stays
as fast as without it; the Pause button holds it after the photo in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from edgeret.errors import EdgeretError

if TYPE_CHECKING:
    from edgeret.prepare_bg import BackgroundPreparation


class PrepareStatusWidget(QWidget):
    """"Re-ranking ready for N of M photos · ETA …" with a Pause/Resume button; hidden while nothing runs."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setObjectName("prepareStatus")
        self.pause_button = QToolButton()
        self.pause_button.setText("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold the background preparation of the re-ranker (it carries on later)")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label)
        row.addWidget(self.pause_button)
        self.pause_button.toggled.connect(lambda on: self.pause_button.setText("Resume" if on else "Pause"))
        self.hide()

    def show_status(self, text: str, done: bool) -> None:
        self.label.setText(text)
        self.pause_button.setVisible(not done)
        self.show()


class PrepareWorker(QObject):
    """Owns at most one BackgroundPreparation for the library; status arrives as a Qt signal on the GUI thread."""

    status = Signal(str, bool)  # the status line, whether everything is prepared
    ended = Signal(str)  # the process stopped on an error: its message

    def __init__(self, library: Path, parent=None):
        super().__init__(parent)
        self.library = library
        self.widget = PrepareStatusWidget()
        self._bg: BackgroundPreparation | None = None
        self._key: tuple | None = None
        self.status.connect(self.widget.show_status)
        self.widget.pause_button.toggled.connect(self.set_paused)

    def ensure(self, settings) -> None:
        """Run preparation for the re-ranker `settings` (gui.workers.QuerySettings) name, if it is an installed
        MLLM; stop it otherwise. A running preparation for the same model is only woken (new photos)."""
        key = _model_key(settings)
        if key == self._key and self._bg is not None and self._bg.running:
            self._bg.wake()
            return
        self.stop()
        if key is None:
            return
        from edgeret.prepare_bg import BackgroundPreparation

        model, vlm, mmproj, threads = key
        self._key = key
        self._bg = BackgroundPreparation(
            self.library, model=model, vlm=vlm, mmproj=mmproj, threads=threads,
            # the last photo's own report already has every photo ready: nothing is left to pause from then on
            # (the "done" report follows it a moment later, and the button must not show in between)
            on_status=lambda st: self.status.emit(st.text(), st.state == "done" or st.ready >= st.total),
            on_exit=lambda code, msg: self.ended.emit(msg) if code else None,
        ).start()
        if self.widget.pause_button.isChecked():
            self._bg.pause()

    def set_paused(self, paused: bool) -> None:
        if self._bg is not None:
            (self._bg.pause if paused else self._bg.resume)()

    @property
    def running(self) -> bool:
        return self._bg is not None and self._bg.running

    def stop(self) -> None:
        if self._bg is not None:
            self._bg.stop()
        self._bg = self._key = None

    def shutdown(self) -> None:
        self.stop()


def _model_key(s) -> tuple | None:
    """(model, vlm, mmproj, threads) of an installed MLLM re-ranker the settings use, else None."""
    if not s.rerank or s.reranker not in ("mllm", "mllm+sv"):
        return None
    from edgeret.rerankers import mllm_files

    try:
        files = mllm_files(s.model, s.vlm, s.mmproj)
    except EdgeretError:  # not installed (or unusable): queries say so; nothing to prepare for
        return None
    if not (Path(files["model_path"]).is_file() and Path(files["mmproj_path"]).is_file()):
        return None
    return s.model, s.vlm, s.mmproj, s.threads
