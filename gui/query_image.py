"""The query photo with an adjustable box: drag to draw a rectangle around the object, drag its corner handles or
its inside to adjust it. `box_changed` carries the box in pixels of the query image (x0, y0, x1, y1; x1/y1
exclusive), or None when cleared; it fires once per gesture, on release, so a search runs per change, not per
mouse move."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget

HANDLE = 7  # px: the corner handles' size on screen (and how near a press must be to grab one)
MIN_DRAG = 4  # px on screen: a shorter drag is a click, not a box
MIN_BOX = 8  # px of the image: edgeret.box.MIN_SIDE, so the widget never emits a box the library refuses


class QueryImage(QWidget):
    """Shows the query image scaled to fit (or a hint text without one) and lets the user box a region of it."""

    box_changed = Signal(object)  # tuple[int, int, int, int] in image pixels, or None

    def __init__(self, hint: str = "", parent=None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self._hint, self._image, self._pixmap = hint, None, None
        self._size = (0, 0)  # the query photo's size in pixels: what boxes are measured in
        self._box: QRectF | None = None  # in image pixels
        self._drag: tuple[str, QPointF, QRectF | None] | None = None  # (mode, press point in image px, box then)
        self.setToolTip("Drag a box around the object to search for it alone")

    # --- what is shown ----------------------------------------------------------------------------------------
    def set_image(self, image: QImage, size: tuple[int, int] | None = None) -> None:
        """Show `image`, a picture of a query photo `size` (w, h) pixels large (default: the image's own size);
        boxes are in pixels of that photo. A box drawn on a photo of the same size stays (the same query again)."""
        size = tuple(size) if size else (image.width(), image.height())
        if self._image is None or size != self._size:
            self._box = None
        self._image, self._size = image, size
        self._pixmap = QPixmap.fromImage(image)
        self.update()

    def show_hint(self, text: str | None = None) -> None:
        """No image: the hint text instead (a text query, or nothing yet)."""
        self._image = self._pixmap = self._box = None
        self._hint = self._hint if text is None else text
        self.update()

    def has_image(self) -> bool:
        return self._image is not None

    def pixmap(self) -> QPixmap:
        """The query image as shown (a null pixmap without one), as QLabel.pixmap() gives it."""
        return self._pixmap if self._pixmap is not None else QPixmap()

    def box(self) -> tuple[int, int, int, int] | None:
        """The box in image pixels, or None."""
        return _pixels(self._box)

    def set_box(self, box: tuple[int, int, int, int] | None, emit: bool = False) -> None:
        """Set (or with None clear) the box from image pixels; `emit` announces it as a user change would."""
        self._box = None if box is None or self._image is None else self._clamped(QRectF(*box[:2], box[2] - box[0],
                                                                                       box[3] - box[1]))
        self.update()
        if emit:
            self.box_changed.emit(self.box())

    def clear_box(self) -> None:
        """Remove the box and announce it (the search goes back to the whole photo)."""
        if self._box is not None:
            self.set_box(None, emit=True)

    # --- geometry ---------------------------------------------------------------------------------------------
    def _frame(self) -> QRectF:
        """Where the image is drawn: scaled to fit, centred."""
        if self._image is None:
            return QRectF()
        iw, ih = self._size[0], self._size[1]
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def _to_image(self, p: QPointF) -> QPointF:
        f = self._frame()
        s = self._size[0] / f.width()
        x = min(max((p.x() - f.left()) * s, 0.0), self._size[0])
        y = min(max((p.y() - f.top()) * s, 0.0), self._size[1])
        return QPointF(x, y)

    def _to_screen(self, r: QRectF) -> QRectF:
        f = self._frame()
        s = f.width() / self._size[0]
        return QRectF(f.left() + r.left() * s, f.top() + r.top() * s, r.width() * s, r.height() * s)

    def _clamped(self, r: QRectF) -> QRectF:
        bounds = QRectF(0, 0, self._size[0], self._size[1])
        return r.normalized().intersected(bounds)

    def _corner_at(self, pos: QPointF) -> str | None:
        if self._box is None:
            return None
        r = self._to_screen(self._box)
        points = {"tl": r.topLeft(), "tr": r.topRight(), "bl": r.bottomLeft(), "br": r.bottomRight()}
        for name, c in points.items():
            if abs(pos.x() - c.x()) <= HANDLE and abs(pos.y() - c.y()) <= HANDLE:
                return name
        return None

    # --- mouse ------------------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if self._image is None or event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        pos = event.position()
        corner = self._corner_at(pos)
        inside = self._box is not None and self._to_screen(self._box).contains(pos)
        mode = corner or ("move" if inside else "new")
        self._drag = (mode, self._to_image(pos), QRectF(self._box) if self._box is not None else None)
        self._press_screen = pos

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self._drag is None:
            corner = self._corner_at(pos) if self._image is not None else None
            diagonal = corner in ("tl", "br")
            cursor = (Qt.CursorShape.SizeFDiagCursor if diagonal else Qt.CursorShape.SizeBDiagCursor) if corner \
                else Qt.CursorShape.CrossCursor
            self.setCursor(cursor)
            return
        self._follow(pos)

    def _follow(self, pos: QPointF) -> None:
        """Apply the drag in progress at screen position `pos`."""
        mode, start, before = self._drag
        here = self._to_image(pos)
        if mode == "new":
            if (pos - self._press_screen).manhattanLength() >= MIN_DRAG:
                self._box = self._clamped(QRectF(start, here))
        elif mode == "move":
            moved = before.translated(here - start)
            dx = min(max(moved.left(), 0.0), self._size[0] - moved.width()) - moved.left()
            dy = min(max(moved.top(), 0.0), self._size[1] - moved.height()) - moved.top()
            self._box = moved.translated(dx, dy)
        else:
            r = QRectF(before)
            getattr(r, {"tl": "setTopLeft", "tr": "setTopRight", "bl": "setBottomLeft", "br": "setBottomRight"}[mode])(
                here)
            self._box = self._clamped(r)
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        if self._drag is None or event.button() != Qt.MouseButton.LeftButton:
            return super().mouseReleaseEvent(event)
        self._follow(event.position())  # the release point counts, even if no move event reached us
        _, _, before = self._drag
        self._drag = None
        if self._box is not None and (self._box.width() < MIN_BOX or self._box.height() < MIN_BOX):
            self._box = before  # too small to search: keep what was there
        self.update()
        if _pixels(before) != self.box():
            self.box_changed.emit(self.box())

    # --- painting ---------------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self._pixmap is None:
            p.setPen(self.palette().color(self.foregroundRole()))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._hint)
            p.setPen(QPen(QColor(128, 128, 128), 1))
            p.drawRect(self.rect().adjusted(0, 0, -1, -1))
            return
        p.drawPixmap(self._frame().toRect(), self._pixmap)
        if self._box is None:
            return
        r = self._to_screen(self._box)
        shade = QColor(0, 0, 0, 110)  # dim what is outside the box, so the boxed object stands out
        f = self._frame()
        for part in (QRectF(f.left(), f.top(), f.width(), r.top() - f.top()),
                     QRectF(f.left(), r.bottom(), f.width(), f.bottom() - r.bottom()),
                     QRectF(f.left(), r.top(), r.left() - f.left(), r.height()),
                     QRectF(r.right(), r.top(), f.right() - r.right(), r.height())):
            p.fillRect(part, shade)
        p.setPen(QPen(QColor(255, 200, 0), 2))
        p.drawRect(r)
        p.setBrush(QColor(255, 200, 0))
        for c in (r.topLeft(), r.topRight(), r.bottomLeft(), r.bottomRight()):
            p.drawRect(QRectF(c.x() - HANDLE / 2, c.y() - HANDLE / 2, HANDLE, HANDLE))


def _pixels(r: QRectF | None) -> tuple[int, int, int, int] | None:
    return None if r is None else (round(r.left()), round(r.top()), round(r.right()), round(r.bottom()))
