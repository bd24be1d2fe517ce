"""A thumbnail grid (QListView in icon mode): tile painter with verdict badges, multi-selection, dragging files out,
the line where matches end, and the per-photo actions."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QListView, QMenu, QStyle, QStyledItemDelegate

from edgeret.verdicts import Verdict

from .item_models import KEY_ROLE, LINES_ROLE, P_ROLE, PATH_ROLE, VERDICT_ROLE

THUMB = 160
LINE_H = 17
BOUNDARY = QColor("#2f855a")

# badge colours: filled for a verdict, outlined grey while waiting or when the photo could not be checked
BADGES = {
    Verdict.SAME: (QColor("#2f855a"), QColor("white")),
    Verdict.MAYBE: (QColor("#d69e2e"), QColor("black")),
    Verdict.DIFFERENT: (QColor("#9b2c2c"), QColor("white")),
    Verdict.UNCHECKED: (None, QColor("#718096")),
    Verdict.UNJUDGED: (None, QColor("#718096")),
}


def badge_colours(verdict: Verdict) -> tuple[QColor | None, QColor]:
    return BADGES[verdict]


class TileDelegate(QStyledItemDelegate):
    """Thumbnail on top, caption lines below (the file name elided in the middle), and on the last line a verdict
    badge once a re-ranker runs; a bar under the thumbnail shows P(same) once judged."""

    def __init__(self, n_lines: int, parent=None):
        super().__init__(parent)
        self.n_lines = n_lines

    def sizeHint(self, option, index) -> QSize:  # noqa: N802 - Qt's name
        return QSize(THUMB + 12, THUMB + 14 + self.n_lines * LINE_H)

    def paint(self, painter, option, index) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = option.rect.adjusted(3, 3, -3, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        pal = option.palette
        painter.fillRect(r, pal.highlight() if selected else pal.alternateBase())
        box = QRect(r.x() + 3, r.y() + 3, r.width() - 6, THUMB)
        self._thumbnail(painter, box, index.data(Qt.ItemDataRole.DecorationRole))
        p = index.data(P_ROLE)
        if p is not None and p == p:  # NaN (not judged) draws no bar
            bar = QRect(box.x(), box.bottom() - 5, int(box.width() * p), 5)
            painter.fillRect(bar, QColor.fromHsvF(p / 3, 0.8, 0.85))  # red → green
        text_colour = pal.highlightedText().color() if selected else pal.text().color()
        painter.setPen(text_colour)
        y = box.bottom() + 5
        lines = index.data(LINES_ROLE) or []
        for line in lines:
            text = painter.fontMetrics().elidedText(line, Qt.TextElideMode.ElideMiddle, r.width() - 6)
            painter.drawText(QRect(r.x() + 3, y, r.width() - 6, LINE_H), Qt.AlignmentFlag.AlignLeft, text)
            y += LINE_H
        verdict = index.data(VERDICT_ROLE)
        if verdict is not None and lines:
            self._badge(painter, QRect(r.x() + 3, y - LINE_H, r.width() - 6, LINE_H - 1), verdict)
        if option.state & QStyle.StateFlag.State_HasFocus:
            painter.setBrush(Qt.BrushStyle.NoBrush)  # the badge left its fill on the painter
            painter.setPen(pal.highlight().color())
            painter.drawRect(r.adjusted(0, 0, -1, -1))
        painter.restore()

    @staticmethod
    def _thumbnail(painter, box: QRect, pm) -> None:
        if pm is None or pm.isNull():
            painter.fillRect(box, QColor(128, 128, 128, 60))
            return
        scaled = pm.scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        painter.drawPixmap(box.x() + (box.width() - scaled.width()) // 2,
                           box.y() + (box.height() - scaled.height()) // 2, scaled)

    @staticmethod
    def _badge(painter, line: QRect, verdict: Verdict) -> None:
        """A rounded badge at the right of the line: the verdict in words, in its colour."""
        fill, ink = badge_colours(verdict)
        fm = painter.fontMetrics()
        w = min(line.width() - 30, fm.horizontalAdvance(verdict.value) + 12)
        badge = QRect(line.right() - w, line.y(), w, line.height())
        if fill is not None:
            painter.setBrush(fill)
            painter.setPen(Qt.PenStyle.NoPen)
        else:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(ink, 1, Qt.PenStyle.DashLine))
        painter.drawRoundedRect(badge, 7, 7)
        painter.setPen(ink)
        text = fm.elidedText(verdict.value, Qt.TextElideMode.ElideRight, w - 8)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)


class PhotoGrid(QListView):
    """Arrows move, Enter opens, Ctrl+C copies the selected paths, Space asks for the full-window preview; photos
    drag out as files. The context menu offers every action on the photo or the selection."""

    find_requested = Signal(int, str)  # key, path: "Find this object"
    open_requested = Signal(str)
    reveal_requested = Signal(str)
    copy_requested = Signal(str)  # the selected paths, one a line
    preview_requested = Signal()
    selection_action = Signal(str)  # "copy-to", "move-to", "export": on the selection (the window decides)

    def __init__(self, n_lines: int, parent=None, selection_actions: bool = False):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # lets the view lay out 100k items without asking each one its size
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(500)
        self.setSpacing(2)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setItemDelegate(TileDelegate(n_lines, self))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.activated.connect(lambda idx: self.open_requested.emit(idx.data(PATH_ROLE)))
        self.selection_actions = selection_actions
        self.boundary: int | None = None  # row where matches end (None: no line)

    def startDrag(self, actions) -> None:  # noqa: N802 - files are copied out, never moved out of the library
        super().startDrag(Qt.DropAction.CopyAction)

    def current_path(self) -> str | None:
        idx = self.currentIndex()
        return idx.data(PATH_ROLE) if idx.isValid() else None

    def selected_rows(self) -> list[int]:
        """Selected rows in order; the current row when nothing is selected."""
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes()) if self.selectionModel() else []
        if not rows and self.currentIndex().isValid():
            rows = [self.currentIndex().row()]
        return rows

    def selected_paths(self) -> list[str]:
        return [self.model().index(r, 0).data(PATH_ROLE) for r in self.selected_rows()]

    def set_boundary(self, row: int | None) -> None:
        if row != self.boundary:
            self.boundary = row
            self.viewport().update()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.matches(QKeySequence.StandardKey.Copy) and self.selected_paths():
            self.copy_requested.emit("\n".join(self.selected_paths()))
            return
        if event.key() == Qt.Key.Key_Space and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            self.preview_requested.emit()
            return
        super().keyPressEvent(event)

    def menu_for(self, key: int, path: str) -> QMenu:
        menu = QMenu(self)
        n = len(self.selected_paths()) if self.selectionModel() else 1
        menu.addAction("Find this object", lambda: self.find_requested.emit(key, path))
        menu.addSeparator()
        menu.addAction("Open", lambda: self.open_requested.emit(path))
        menu.addAction("Reveal in file manager", lambda: self.reveal_requested.emit(path))
        paths = "\n".join(self.selected_paths()) if n > 1 else path
        menu.addAction(f"Copy {n} paths" if n > 1 else "Copy path", lambda: self.copy_requested.emit(paths))
        if self.selection_actions:
            menu.addSeparator()
            what = f"{n} photos" if n > 1 else "photo"
            menu.addAction(f"Copy {what} to folder…", lambda: self.selection_action.emit("copy-to"))
            menu.addAction(f"Move {what} to folder…", lambda: self.selection_action.emit("move-to"))
            menu.addAction("Export results…", lambda: self.selection_action.emit("export"))
        return menu

    def _menu(self, pos) -> None:
        idx = self.indexAt(pos)
        if idx.isValid():
            if not self.selectionModel().isSelected(idx):
                self.setCurrentIndex(idx)
            self.menu_for(idx.data(KEY_ROLE), idx.data(PATH_ROLE)).exec(self.viewport().mapToGlobal(pos))

    # the line where matches end ---------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.boundary is None or self.model() is None or self.model().rowCount() == 0:
            return
        painter = QPainter(self.viewport())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(BOUNDARY, 3))
        segments = self.boundary_path()
        for a, b in segments:
            painter.drawLine(a, b)
        if len(segments) == 1:  # a straight line has room for its name at the right; a stepped one speaks for itself
            self._label(painter, segments, "matches end here" if self.boundary else "no match found")
        painter.end()

    def _label(self, painter, segments, text: str) -> None:
        """A small pill at the line's right end naming it."""
        fm = painter.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 14, fm.height() + 4
        a, b = segments[-1]
        cx, cy = b.x() - w // 2 - 8, max(a.y(), h // 2 + 1)
        pill = QRect(cx - w // 2, cy - h // 2, w, h)
        painter.setBrush(self.palette().base())
        painter.drawRoundedRect(pill, h // 2, h // 2)
        painter.setPen(BOUNDARY)
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)

    def boundary_path(self) -> list[tuple[QPoint, QPoint]]:
        """Segments (viewport coordinates) of the stepped line between the matches and the rest."""
        n = self.model().rowCount()
        width = self.viewport().width()
        if self.boundary >= n:  # everything matched: a line under the last row
            last = self.visualRect(self.model().index(n - 1, 0))
            return [(QPoint(0, last.bottom() + 1), QPoint(width, last.bottom() + 1))]
        first = self.visualRect(self.model().index(self.boundary, 0))
        top, bottom, x = first.top() - 1, first.bottom() + 1, first.left() - 1
        if x <= self.spacing() + 1:  # the first non-match starts a row: one straight line above it
            return [(QPoint(0, top), QPoint(width, top))]
        return [(QPoint(0, bottom), QPoint(x, bottom)), (QPoint(x, bottom), QPoint(x, top)),
                (QPoint(x, top), QPoint(width, top))]
