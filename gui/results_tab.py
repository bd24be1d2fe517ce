"""The Results tab: the query pane above, the results grid beside the compare view, and the full-window preview
(Space) that takes the compare view over the whole window, arrow keys stepping through the results."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from edgeret.verdicts import Verdict

from .compare import CompareView, PairLoader, headline_for
from .grid import PhotoGrid
from .item_models import RERANKER_NAMES, ResultListModel
from .query_pane import QueryPane


class PreviewPage(QWidget):
    """The full-window page: the compare view alone; arrows step, Space or Esc go back."""

    step = Signal(int)
    leave = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(0, 0, 0, 0)
        hint = QLabel("← → previous / next result  ·  Space or Esc: back to the results")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.lay.addWidget(hint)  # the compare view is inserted above it

    def add_view(self, view: QWidget) -> None:
        self.lay.insertWidget(0, view, 1)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_PageDown):
            self.step.emit(1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            self.step.emit(-1)
        elif key in (Qt.Key.Key_Space, Qt.Key.Key_Escape):
            self.leave.emit()
        else:
            super().keyPressEvent(event)


class ResultsTab(QWidget):
    """Owns the compare view's content: which result is shown, and loading the pair (with sv matches) for it."""

    def __init__(self, model: ResultListModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.query_pane = QueryPane()
        self.grid = PhotoGrid(n_lines=3, selection_actions=True)
        self.grid.setModel(model)
        self.grid.setObjectName("resultsGrid")
        self.compare = CompareView()
        self.loader = PairLoader(self)
        self.split = QSplitter()
        self.split.addWidget(self.grid)
        self.split.addWidget(self.compare)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.query_pane)
        lay.addWidget(self.split, 1)
        self.query_source = None  # path, image bytes, or None (a text query)
        self.query_caption: str | None = None
        self.box = None
        self._shown: tuple | None = None  # (request id, candidate path, with matches, ...) asked for last
        self.shown_path: str | None = None  # the result whose pair the compare view shows
        self.grid.selectionModel().currentChanged.connect(lambda *_: self.show_current())
        self.loader.signals.done.connect(self._pair_loaded)
        self.loader.signals.failed.connect(self._pair_failed)

    def set_query(self, source, caption: str | None = None, box=None) -> None:
        """A new query: `source` is a path or image bytes for a photo query, None for a text query; `box` the
        searched region of the photo."""
        self.query_source, self.query_caption, self.box = source, caption, box
        self._shown = self.shown_path = None
        self.compare.clear("Searching…")

    def wants_matches(self) -> bool:
        return self.model.reranker in ("sv", "mllm+sv") and self.query_source is not None

    def show_current(self) -> None:
        """Bring the compare view in step with the current result: its verdict now, the pair when loaded."""
        idx = self.grid.currentIndex()
        if not idx.isValid() or idx.row() >= self.model.rowCount():
            if self.model.rowCount() == 0:
                self.compare.clear("No results yet." if self.query_source is None and not self.query_caption else "")
            return
        row = idx.row()
        self._update_verdict(row)
        path = self.model.result(row).path
        want = (path, self.wants_matches(), self.query_source, self.box)
        if self._shown is None or self._shown[1:] != want:
            rid = self.loader.request(self.query_source, path, want[1], self.box)
            self._shown = (rid, *want)

    def _update_verdict(self, row: int) -> None:
        r = self.model.result(row)
        verdict = self.model.verdict(row)
        name = RERANKER_NAMES.get(self.model.reranker or "", self.model.reranker)
        points = self.compare.matched_points() if self.wants_matches() and self.compare.pair is not None else None
        if verdict not in (Verdict.SAME, Verdict.MAYBE, Verdict.DIFFERENT):
            points = None
        self.compare.set_verdict(verdict, headline_for(verdict, name, r.p_same, points), self.model.numbers(row))

    def _pair_loaded(self, rid: int, pair) -> None:
        if self._shown is None or rid != self._shown[0]:
            return  # an older request: the user has moved on
        self.compare.show_pair(pair, self.wants_matches(), self.query_caption)
        self.shown_path = self._shown[1]
        idx = self.grid.currentIndex()
        if idx.isValid():
            self._update_verdict(idx.row())

    def _pair_failed(self, rid: int, message: str) -> None:
        if self._shown is not None and rid == self._shown[0]:
            self.compare.clear(f"This photo cannot be shown: {message}")

    def step(self, delta: int) -> None:
        """Move to the next (+1) or previous (−1) result."""
        n = self.model.rowCount()
        if n:
            row = min(n - 1, max(0, self.grid.currentIndex().row() + delta))
            self.grid.setCurrentIndex(self.model.index(row))

    def shutdown(self) -> None:
        self.loader.shutdown()
