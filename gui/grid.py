"""A thumbnail grid (QListView in icon mode) with a tile painter and the per-photo actions."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence
from PySide6.QtWidgets import QListView, QMenu, QStyle, QStyledItemDelegate

from .item_models import KEY_ROLE, LINES_ROLE, P_ROLE

THUMB = 160
LINE_H = 16


class TileDelegate(QStyledItemDelegate):
    """Thumbnail on top, caption lines below, and a bar showing P(same) once the re-ranker has judged the photo."""

    def __init__(self, n_lines: int, parent=None):
        super().__init__(parent)
        self.n_lines = n_lines

    def sizeHint(self, option, index) -> QSize:
        return QSize(THUMB + 12, THUMB + 12 + self.n_lines * LINE_H)

    def paint(self, painter, option, index) -> None:
        painter.save()
        r = option.rect.adjusted(3, 3, -3, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        pal = option.palette
        painter.fillRect(r, pal.highlight() if selected else pal.alternateBase())
        pm = index.data(Qt.ItemDataRole.DecorationRole)
        box = QRect(r.x() + 3, r.y() + 3, r.width() - 6, THUMB)
        if pm is not None and not pm.isNull():
            scaled = pm.scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio,
                               Qt.TransformationMode.SmoothTransformation)
            painter.drawPixmap(box.x() + (box.width() - scaled.width()) // 2,
                               box.y() + (box.height() - scaled.height()) // 2, scaled)
        else:
            painter.fillRect(box, QColor(128, 128, 128, 60))
        p = index.data(P_ROLE)
        if p is not None and p == p:  # NaN (not judged) draws no bar
            bar = QRect(box.x(), box.bottom() - 5, int(box.width() * p), 5)
            painter.fillRect(bar, QColor.fromHsvF(p / 3, 0.8, 0.85))  # red → green
        painter.setPen(pal.highlightedText().color() if selected else pal.text().color())
        y = box.bottom() + 4
        for line in index.data(LINES_ROLE) or []:
            text = painter.fontMetrics().elidedText(line, Qt.TextElideMode.ElideMiddle, r.width() - 6)
            painter.drawText(QRect(r.x() + 3, y, r.width() - 6, LINE_H), Qt.AlignmentFlag.AlignLeft, text)
            y += LINE_H
        if option.state & QStyle.StateFlag.State_HasFocus:
            painter.setPen(pal.highlight().color())
            painter.drawRect(r.adjusted(0, 0, -1, -1))
        painter.restore()


class PhotoGrid(QListView):
    """Arrows move, Enter opens, Ctrl+C copies the path; the context menu offers every action on a photo."""

    find_requested = Signal(int, str)  # key, path: "Find this object"
    open_requested = Signal(str)
    reveal_requested = Signal(str)
    copy_requested = Signal(str)

    def __init__(self, n_lines: int, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # lets the view lay out 100k items without asking each one its size
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(500)
        self.setSpacing(2)
        self.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.setItemDelegate(TileDelegate(n_lines, self))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.activated.connect(lambda idx: self.open_requested.emit(self._path(idx)))

    def current_path(self) -> str | None:
        idx = self.currentIndex()
        return self._path(idx) if idx.isValid() else None

    def _path(self, idx) -> str:
        # from the model itself: a Qt string drops the bytes of a file name that is not valid UTF-8
        return self.model().path(idx.row())

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Copy) and self.current_path():
            self.copy_requested.emit(self.current_path())
            return
        super().keyPressEvent(event)

    def menu_for(self, key: int, path: str) -> QMenu:
        menu = QMenu(self)
        menu.addAction("Find this object", lambda: self.find_requested.emit(key, path))
        menu.addSeparator()
        menu.addAction("Open", lambda: self.open_requested.emit(path))
        menu.addAction("Reveal in file manager", lambda: self.reveal_requested.emit(path))
        menu.addAction("Copy path", lambda: self.copy_requested.emit(path))
        return menu

    def _menu(self, pos) -> None:
        idx = self.indexAt(pos)
        if idx.isValid():
            self.setCurrentIndex(idx)
            self.menu_for(idx.data(KEY_ROLE), self._path(idx)).exec(self.viewport().mapToGlobal(pos))
