"""Thumbnails for the grids: made by edgeret.thumbnails on pool threads, newest request first.

Fast scrolling through a big library requests thousands of thumbnails that are off screen a moment later, so requests
go on a bounded stack: the most recent are served first and the oldest are forgotten (the view asks again for
whatever is still visible).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from edgeret.photoinfo import taken
from edgeret.thumbnails import ThumbnailCache

from .wording import date

log = logging.getLogger(__name__)


class _Drain(QRunnable):
    def __init__(self, loader: ThumbLoader):
        super().__init__()
        self.loader = loader

    def run(self) -> None:
        while (path := self.loader._next()) is not None:
            image, when = QImage(), None
            try:
                thumb, when = self.loader.cache.dated(path)  # the date is kept with the thumbnail
                image = QImage(str(thumb))
            except Exception as e:  # an unreadable photo gets no thumbnail, never an error dialog
                log.debug("no thumbnail for %s: %s", path, e)
            self.loader.ready.emit(path, image)  # QImage (unlike QPixmap) may be built off the GUI thread
            self.loader.dated.emit(path, date(when) if when is not None else _date_of(path))
            self.loader._done(path)


def _date_of(path: str) -> str:
    """The date of a photo without a thumbnail (unreadable, yet it has a modification time)."""
    try:
        return date(taken(path))
    except Exception as e:  # a date is a nicety: never let it stop the thumbnails
        log.debug("no date for %s: %s", path, e)
        return ""


class ThumbLoader(QObject):
    """request(path) → later ready(path, QImage) and dated(path, text); a null QImage: the photo could not be read."""

    ready = Signal(str, QImage)
    dated = Signal(str, str)  # path, the date the photo was taken (EXIF, else the file's), as shown on a tile

    def __init__(self, cache: ThumbnailCache, threads: int = 2, backlog: int = 512, parent=None):
        super().__init__(parent)
        self.cache = cache
        self.backlog = backlog
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, threads))
        self._lock = threading.Lock()
        self._stack: OrderedDict[str, None] = OrderedDict()
        self._inflight: set[str] = set()
        self._running = 0

    def request(self, path: str) -> None:
        with self._lock:
            if path in self._inflight:
                return
            self._stack[path] = None
            self._stack.move_to_end(path)
            while len(self._stack) > self.backlog:
                self._stack.popitem(last=False)
            start = self._running < self.pool.maxThreadCount()
            if start:
                self._running += 1
        if start:
            self.pool.start(_Drain(self))

    def pending(self, path: str) -> bool:
        with self._lock:
            return path in self._stack or path in self._inflight

    def _next(self) -> str | None:
        with self._lock:
            if not self._stack:
                self._running -= 1
                return None
            path = self._stack.popitem(last=True)[0]
            self._inflight.add(path)
            return path

    def _done(self, path: str) -> None:
        with self._lock:
            self._inflight.discard(path)

    def shutdown(self) -> None:
        with self._lock:
            self._stack.clear()
        self.pool.waitForDone(5000)
