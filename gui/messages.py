"""Messages that wrap and never widen the window: a wrapping label, a message bar with an expandable Details area,
the status line, and the log (Help → Show log) that keeps every message and warning in full."""

from __future__ import annotations

import datetime as dt
import logging

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
)

from .wording import breakable

COLOURS = {"info": "#2d6cb5", "warning": "#b7791f", "error": "#c53030"}


class WrapLabel(QLabel):
    """A word-wrapping label whose width the layout decides (its text never sets a minimum width)."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMinimumWidth(40)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(breakable(text))

    def text(self) -> str:
        """The text as given (without the break opportunities added for wrapping)."""
        return super().text().replace("\u200b", "")


class StatusLine(QLabel):
    """The status bar's text: one line, elided in the middle, the full text in its tooltip."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self._full = ""

    def show_text(self, text: str) -> None:
        self._full = " ".join(text.split())
        self.setToolTip(text if len(text) > 80 else "")
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        super().setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(40, self.width())))


class MessageBar(QFrame):
    """A short message (wrapped) with a Details button that shows the long text, and a close button."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        self.text = WrapLabel()
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.details.setMaximumHeight(110)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.hide()
        row = QHBoxLayout()
        row.addWidget(self.text, 1)
        row.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addLayout(row)
        lay.addWidget(self.details)
        self.details_button.toggled.connect(self.details.setVisible)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def show_message(self, text: str, level: str = "info", details: str = "") -> None:
        self.text.setText(text)
        self.setStyleSheet(f"#messageBar {{ border-left: 4px solid {COLOURS.get(level, COLOURS['info'])}; }}")
        self.details.setPlainText(details)
        self.details_button.setVisible(bool(details) and details.strip() != text.strip())
        self.details_button.setChecked(False)
        self.show()


class LogBook(QObject):
    """Every message the app showed and every warning logged, with the time; Help → Show log lists them."""

    added = Signal(str)

    class _Handler(logging.Handler):
        def __init__(self, book: LogBook):
            super().__init__(logging.INFO)
            self.book = book

        def emit(self, record: logging.LogRecord) -> None:
            try:
                self.book.add(f"{record.levelname.lower()} {record.name}: {record.getMessage()}")
            except Exception:  # a logging handler must never raise
                self.handleError(record)

    def __init__(self, parent=None, limit: int = 5000):
        super().__init__(parent)
        self.lines: list[str] = []
        self.limit = limit
        self.handler = LogBook._Handler(self)
        logging.getLogger("edgeret").addHandler(self.handler)
        logging.getLogger("gui").addHandler(self.handler)

    def add(self, text: str) -> None:
        line = f"{dt.datetime.now():%H:%M:%S}  {text}"
        self.lines.append(line)
        del self.lines[: -self.limit]
        self.added.emit(line)  # queued to the GUI thread when logged from a worker

    def text(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        logging.getLogger("edgeret").removeHandler(self.handler)
        logging.getLogger("gui").removeHandler(self.handler)


class LogDialog(QDialog):
    """Help → Show log: the messages in full, selectable, with Copy."""

    def __init__(self, book: LogBook, parent=None):
        super().__init__(parent)
        self.setWindowTitle("edgeret log")
        self.resize(760, 420)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setPlainText(book.text() or "(nothing logged yet)")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy all", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.view.toPlainText()))
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view)
        lay.addWidget(buttons)
        book.added.connect(self.view.appendPlainText)
