"""What the GUI tests share: opening the window, waiting for its workers, closing it cleanly, dropping files on it."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from edgeret.settings import Settings
from edgeret.thumbnails import ThumbnailCache
from gui.main_window import MainWindow

N_PHOTOS = 13  # the `photos` fixture: 12 JPEGs and a PNG (the hidden folder is skipped)
WAIT = 90_000  # generous: CI machines can be slow and shared


def open_window(qtbot, tmp_path: Path, encoder: Path | str | None = None, *, library: Path | None = None,
                threads: int = 2, thumb_size: int = 96, **kwargs) -> MainWindow:
    """A shown MainWindow on `library` (default tmp_path/lib) with its thumbnails under tmp_path/thumbs; kwargs go
    to MainWindow (text_encoder, watch, prefs). The test closes it with close()."""
    settings = Settings(library=library or tmp_path / "lib", encoder=str(encoder) if encoder else None, threads=threads)
    w = MainWindow(settings, ThumbnailCache(tmp_path / "thumbs", size=thumb_size), **kwargs)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def close(w: MainWindow) -> None:
    """Stop the workers and free the window while Qt is still up (not in the interpreter's final collection)."""
    w.shutdown()
    w.close()
    w.deleteLater()
    QApplication.processEvents()
    gc.collect()


def index(qtbot, w: MainWindow, folder: Path) -> list[tuple[int, int, str]]:
    """Add `folder` as the user would and wait for indexing; returns the progress reports seen."""
    seen = []
    w.add_folder(str(folder))
    w.index_worker.progress.connect(lambda d, t, p: seen.append((d, t, p)))
    with qtbot.waitSignal(w.index_worker.report, timeout=WAIT):
        pass
    qtbot.waitUntil(lambda: w.photo_model.rowCount() == N_PHOTOS, timeout=WAIT)
    return seen


def run_query(qtbot, w: MainWindow, start) -> list[tuple[int, int, list]]:
    """Start a query with `start()`, wait for it to finish; returns (judged, total, results) per update."""
    updates = []

    def record(gen, results, judged, total):
        if gen == w.gen:  # a query the settings re-ran before this one is not ours
            updates.append((judged, total, results))

    w.query.results.connect(record)
    ours = lambda gen, state: gen == w.gen  # noqa: E731
    with qtbot.waitSignal(w.query.finished_query, timeout=WAIT, check_params_cb=ours) as done:
        start()
    w.query.results.disconnect(record)
    updates.append(done.args[1])
    return updates


def drop(widget, path: Path) -> None:
    """Drag a file onto `widget` exactly as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    actions = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(10, 10), actions, mime, buttons, mods)  # QPoint: accepted by every PySide6 6.x
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(10, 10), actions, mime, buttons, mods))


def pixel_std(image: QImage) -> float:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return float(arr.std())
