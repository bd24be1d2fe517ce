"""Item models behind the grids: library photos, query results (rank, scores, live re-ordering) and the members of
one duplicate group."""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, Qt, QUrl
from PySide6.QtGui import QImage, QPixmap

from edgeret.fsnames import display
from edgeret.query import Result
from edgeret.verdicts import Thresholds, Verdict

from .thumbs import ThumbLoader

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
LINES_ROLE = Qt.ItemDataRole.UserRole + 3  # caption lines under the thumbnail
P_ROLE = Qt.ItemDataRole.UserRole + 4  # P(same) or None, for the delegate's bar
VERDICT_ROLE = Qt.ItemDataRole.UserRole + 5  # edgeret.verdicts.Verdict, or None when no re-ranker runs

RERANKER_NAMES = {"mllm": "multimodal LLM", "sv": "spatial verification", "mllm+sv": "LLM + spatial verification"}


class PhotoListModel(QAbstractListModel):
    """(key, path) rows; thumbnails are requested only for rows a view actually paints."""

    def __init__(self, loader: ThumbLoader, cached_pixmaps: int = 3000, parent=None):
        super().__init__(parent)
        self.loader = loader
        self._rows: list[tuple[int, str]] = []
        self._row_of: dict[str, int] = {}
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._max_pixmaps = cached_pixmaps
        self._dates: dict[str, str] = {}
        loader.ready.connect(self._thumb_ready)
        loader.dated.connect(self._dated)

    def set_photos(self, rows: list[tuple[int, str]]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._reindex()
        self.endResetModel()

    def _reindex(self) -> None:
        self._row_of = {path: i for i, (_, path) in enumerate(self._rows)}

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's own signature
        return 0 if parent.isValid() else len(self._rows)

    def path(self, row: int) -> str:
        return self._rows[row][1]

    def key(self, row: int) -> int:
        return self._rows[row][0]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        key, path = self._rows[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            return self._pixmap(path)
        if role in (Qt.ItemDataRole.DisplayRole, LINES_ROLE):
            return self.lines(index.row()) if role == LINES_ROLE else display(Path(path).name)
        if role == Qt.ItemDataRole.ToolTipRole:
            return display(path)
        if role == PATH_ROLE:
            return path
        if role == KEY_ROLE:
            return key
        return None

    def lines(self, row: int) -> list[str]:
        path = self._rows[row][1]
        return [display(Path(path).name), self._dates.get(path, "")]

    def paths(self, rows) -> list[str]:
        return [self._rows[r][1] for r in rows]

    # dragging photos out to other applications drops their files
    def flags(self, index):
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt's name
        return ["text/uri-list"]

    def mimeData(self, indexes) -> QMimeData:  # noqa: N802
        mime = QMimeData()
        paths = self.paths(sorted({i.row() for i in indexes if i.isValid()}))
        mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
        mime.setText("\n".join(paths))
        return mime

    def _dated(self, path: str, text: str) -> None:
        self._dates[path] = text
        row = self._row_of.get(path)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [LINES_ROLE])

    def _pixmap(self, path: str) -> QPixmap | None:
        pm = self._pixmaps.get(path)
        if pm is not None:
            self._pixmaps.move_to_end(path)
            return pm
        if not self.loader.pending(path):
            self.loader.request(path)
        return None

    def _thumb_ready(self, path: str, image: QImage) -> None:
        row = self._row_of.get(path)
        if row is None:
            return
        self._pixmaps[path] = QPixmap.fromImage(image)  # a null pixmap marks "unreadable": not asked again
        while len(self._pixmaps) > self._max_pixmaps:
            self._pixmaps.popitem(last=False)
        idx = self.index(row)
        self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])


class ResultListModel(PhotoListModel):
    """Results of the current query, best first; re-ordering keeps selection and current item on the same photo."""

    def __init__(self, loader: ThumbLoader, parent=None):
        super().__init__(loader, parent=parent)
        self._results: list[Result] = []
        self._first_rank: dict[int, int] = {}

    @property
    def results(self) -> list[Result]:
        return list(self._results)

    def clear(self) -> None:
        self.set_results([])

    def set_results(self, results: list[Result]) -> None:
        """Show `results`; the same photos in a new order move (persistent indexes follow), new photos reset."""
        new_keys = [r.key for r in results]
        if sorted(new_keys) != sorted(r.key for r in self._results):
            self.beginResetModel()
            self._results = list(results)
            self._first_rank = {r.key: i for i, r in enumerate(results)}
            self._rows = [(r.key, r.path) for r in results]
            self._reindex()
            self.endResetModel()
            return
        self.layoutAboutToBeChanged.emit()
        old_keys = [r.key for r in self._results]
        new_row = {k: i for i, k in enumerate(new_keys)}
        persistent = self.persistentIndexList()
        self._results = list(results)
        self._rows = [(r.key, r.path) for r in results]
        self._reindex()
        moved = [self.index(new_row[old_keys[p.row()]]) if p.isValid() else QModelIndex() for p in persistent]
        self.changePersistentIndexList(persistent, moved)
        self.layoutChanged.emit()
        top, bottom = self.index(0), self.index(len(self._rows) - 1)
        self.dataChanged.emit(top, bottom, [LINES_ROLE, P_ROLE, VERDICT_ROLE])

    def result(self, row: int) -> Result:
        return self._results[row]

    reranker: str | None = None  # who judges the current query's results (None: nobody)
    thresholds = Thresholds()
    lam = 0.5

    def set_judging(self, reranker: str | None, thresholds: Thresholds, lam: float) -> None:
        """Who judges the current query's results; with nobody, no tile claims to wait for a verdict."""
        self.reranker, self.thresholds, self.lam = reranker, thresholds, lam
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1), [VERDICT_ROLE, P_ROLE])

    def verdict(self, row: int) -> Verdict | None:
        return None if self.reranker is None else self.thresholds.verdict(self._results[row].p_same)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if index.isValid() and index.row() < len(self._results):
            if role == P_ROLE:
                return self._results[index.row()].p_same if self.reranker else None
            if role == VERDICT_ROLE:
                return self.verdict(index.row())
            if role == Qt.ItemDataRole.ToolTipRole:
                return self.numbers(index.row())
        return super().data(index, role)

    def numbers(self, row: int) -> str:
        """The scores behind the verdict, in words (the tile's tooltip and the compare view's details)."""
        r = self._results[row]
        text = [display(r.path), f"Similarity (first stage): {r.first_stage:.3f}"]
        if self.reranker is not None:
            name = RERANKER_NAMES.get(self.reranker, self.reranker)
            if r.p_same is None:
                text.append(f"P(same object) by {name}: not checked yet")
            elif math.isnan(r.p_same):
                text.append(f"P(same object) by {name}: could not check this photo")
            else:
                text += [f"P(same object) by {name}: {r.p_same:.2f}",
                         f"Combined score: {r.final:.3f} = {self.lam:g} × similarity + {1 - self.lam:g} × P(same)"]
        return "\n".join(text)

    def lines(self, row: int) -> list[str]:
        r = self._results[row]
        delta = self._first_rank.get(r.key, row) - row
        move = f" ▲{delta}" if delta > 0 else (f" ▼{-delta}" if delta < 0 else "")
        return [display(Path(r.path).name), self._dates.get(r.path, ""), f"#{row + 1}{move}"]


class GroupMembersModel(PhotoListModel):
    """The members of one duplicate group (edgeret.duplicates.Member), the original first and marked."""

    def __init__(self, loader: ThumbLoader, parent=None):
        super().__init__(loader, parent=parent)
        self._members: list = []

    def set_members(self, members: list) -> None:
        self._members = list(members)
        self.set_photos([(m.key, m.path) for m in members])

    def member(self, row: int):
        return self._members[row]

    def lines(self, row: int) -> list[str]:
        m = self._members[row]
        mark = "★ original" if m.original else f"copy · cos {m.similarity:.3f}"
        return [f"{mark}  {display(Path(m.path).name)}", f"{m.width}×{m.height} · {_size(m.size)}"]


def _size(n: float) -> str:
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")
