"""The query: shown image, drop / paste / choose, a text box ("Describe what to find…"), and the live re-ranking
progress with a Stop button."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMimeData, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .desktop import pictures_dir
from .messages import WrapLabel
from .query_image import QueryImage

DROP_HINT = "Drop a photo here,\npaste one (Ctrl+V)\nor choose a file (Ctrl+O)"
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.webp *.heic *.heif *.avif *.tif *.tiff *.bmp *.gif);;All files (*)"


def image_bytes(image: QImage) -> bytes:
    """PNG bytes of a QImage, for edgeret.decode.decode_bytes."""
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())


def query_from_mime(mime: QMimeData | None) -> tuple[str, str | bytes] | None:
    """("path", file) for a dropped/pasted local file, ("data", PNG bytes) for image data, else None."""
    if mime is None:
        return None
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile() and Path(url.toLocalFile()).is_file():
            return "path", url.toLocalFile()
    if mime.hasImage():
        image = QImage(mime.imageData())
        if not image.isNull():
            return "data", image_bytes(image)
    return None


class QueryPane(QWidget):
    """Emits path_chosen / data_given / text_entered; the window decides what to run."""

    path_chosen = Signal(str)
    data_given = Signal(bytes)
    text_entered = Signal(str)  # Enter in the text box (never empty)
    stop_clicked = Signal()
    box_changed = Signal(object)  # (x0, y0, x1, y1) in query-image pixels after a drag, None after Clear box
    paste_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.image = QueryImage(DROP_HINT)  # drag a box on it to search for one object (box_changed)
        self.image.setObjectName("queryImage")
        self.image.setFixedSize(220, 165)
        self.text = QLineEdit()
        self.text.setObjectName("textQuery")
        self.text.setPlaceholderText("Describe what to find…")
        self.text.setClearButtonEnabled(True)
        self.text.setToolTip("Search the library by a description (needs a paired text encoder); Enter runs")
        self.source = WrapLabel("")
        self.status = WrapLabel("")
        self.text_reason = WrapLabel("")  # why the text box is disabled
        self.text_reason.setObjectName("textReason")
        self.text_reason.hide()
        self.get_text = QPushButton("Get text search…")
        self.get_text.hide()
        self.bar = QProgressBar()
        self.bar.setFormat("%v / %m checked")
        self.bar.hide()
        self.choose = QPushButton("Choose…")
        self.paste = QPushButton("Paste")
        self.stop = QPushButton("Stop (Esc)")
        self.stop.setEnabled(False)
        self.clear_box = QPushButton("Clear box")
        self.clear_box.setToolTip("Search the whole photo again")
        self.clear_box.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.choose, self.paste, self.clear_box):
            buttons.addWidget(b)
        buttons.addStretch()
        checking = QHBoxLayout()  # the stop button sits with the progress it stops (keeps the pane narrow)
        checking.addWidget(self.bar, 1)
        checking.addWidget(self.stop)
        right = QVBoxLayout()
        right.addWidget(self.text)
        reason = QHBoxLayout()
        reason.addWidget(self.text_reason, 1)
        reason.addWidget(self.get_text)
        right.addLayout(reason)
        right.addWidget(self.source)
        right.addLayout(buttons)
        right.addLayout(checking)
        right.addWidget(self.status)
        right.addStretch()
        lay = QHBoxLayout(self)
        lay.addWidget(self.image)
        lay.addLayout(right, 1)
        self.choose.clicked.connect(self.choose_file)
        self.paste.clicked.connect(self.paste_clicked)
        self.stop.clicked.connect(self.stop_clicked)
        self.text.returnPressed.connect(self._text_entered)
        self.clear_box.clicked.connect(self.image.clear_box)
        self.image.box_changed.connect(self._box_changed)

    def _box_changed(self, box) -> None:
        self.clear_box.setEnabled(box is not None)
        self.box_changed.emit(box)

    def reset_box(self) -> None:
        """A new query: no box yet (nothing is emitted)."""
        self.image.set_box(None)
        self.clear_box.setEnabled(False)

    def set_text_available(self, ok: bool, reason: str = "", can_get: bool = False) -> None:
        """Enable the text box, or disable it and say why (with a button when a download would fix it)."""
        self.text.setEnabled(ok)
        self.text.setPlaceholderText("Describe what to find…" if ok else "Text search is not available")
        self.text_reason.setText(f"Text search: {reason}." if reason and not ok else "")
        self.text_reason.setVisible(not ok and bool(reason))
        self.get_text.setVisible(not ok and can_get)

    def _text_entered(self) -> None:
        text = " ".join(self.text.text().split())
        if text:
            self.text_entered.emit(text)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Query photo", pictures_dir(), IMAGE_FILTER)
        if path:
            self.path_chosen.emit(path)

    def accept_mime(self, mime: QMimeData | None) -> bool:
        """Start a query from dropped or pasted content; False if it holds no image."""
        q = query_from_mime(mime)
        if q is None:
            return False
        (self.path_chosen if q[0] == "path" else self.data_given).emit(q[1])
        return True

    def dragEnterEvent(self, event) -> None:
        if query_from_mime(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        if self.accept_mime(event.mimeData()):
            event.acceptProposedAction()

    # --- state shown while a query runs -----------------------------------------------------------------------
    def started(self, source: str) -> None:
        self.source.setText(source)
        self.status.setText("searching…")
        self.bar.hide()
        self.stop.setEnabled(True)

    def show_text_query(self) -> None:
        """A text query has no image: the drop hint comes back."""
        self.image.show_hint(DROP_HINT)
        self.clear_box.setEnabled(False)

    def show_image(self, image: QImage, size: tuple[int, int] | None = None) -> None:
        """Show the query; `size` is the photo's own (a box is in its pixels), `image` may be a smaller copy."""
        self.image.set_image(image, size)  # a box drawn on this query stays visible while its results come in

    def progress(self, judged: int, total: int) -> None:
        self.bar.setVisible(total > 0)
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(judged)

    def finished(self, text: str) -> None:
        self.status.setText(text)
        self.stop.setEnabled(False)
