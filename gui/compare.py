"""Preview and compare: the query and the selected result large, side by side (zoom, fit, 1:1), with the verdict,
the numbers behind it and, for spatial verification, the matched keypoints drawn as lines ("why it matched")."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QRectF, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from edgeret.box import RegionQuery, as_box
from edgeret.decode import decode, decode_bytes
from edgeret.verdicts import Verdict

from .grid import badge_colours
from .messages import WrapLabel
from .workers import to_qimage

SHOW_SIDE = 1600  # longest side the compare view keeps of each photo (zooming past it shows pixels of this copy)
GAP = 24
MAX_LINES = 150  # matched points drawn; more make a tangle


@dataclass(frozen=True)
class Pair:
    """What the compare view shows: both photos as QImages, and the sv matches in their pixel coordinates."""

    query: QImage | None
    candidate: QImage
    query_xy: np.ndarray | None = None
    candidate_xy: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None  # the searched region, in the shown query's pixels


class _LoadSignals(QObject):
    done = Signal(int, object)  # request id, Pair
    failed = Signal(int, str)


class _Load(QRunnable):
    def __init__(self, loader: PairLoader, rid: int, query, candidate: str, with_matches: bool, box):
        super().__init__()
        self.loader, self.rid, self.query = loader, rid, query
        self.candidate, self.with_matches, self.box = candidate, with_matches, box

    def run(self) -> None:
        if self.rid != self.loader.latest:
            return  # superseded while waiting: the user has moved on
        try:
            pair = self.loader.load(self.query, self.candidate, self.with_matches, self.box)
            self.loader.signals.done.emit(self.rid, pair)
        except Exception as e:  # shown in the view; never lost on the thread
            self.loader.signals.failed.emit(self.rid, f"{type(e).__name__}: {e}")


class PairLoader(QObject):
    """Decodes the pair (EXIF-upright, like the index) off the GUI thread; computes sv's matches when asked.
    The decoded query is kept between results of the same query."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.signals = _LoadSignals(self)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.latest = 0
        self._lock = threading.Lock()
        self._query_key = self._query_image = None
        self._sv = None

    def request(self, query, candidate: str, with_matches: bool, box=None) -> int:
        """`query`: a path, PNG/JPEG bytes, or None (a text query); `box`: the searched region of the query (its
        pixels) or None. Returns the request id done/failed carry."""
        self.latest += 1
        self.pool.start(_Load(self, self.latest, query, candidate, with_matches, box))
        return self.latest

    def _query(self, query):
        key = query if isinstance(query, str) else (hash(query) if query is not None else None)
        with self._lock:
            if key != self._query_key:
                self._query_image = None if query is None else (
                    decode(query) if isinstance(query, str) else decode_bytes(query))
                self._query_key = key
            return self._query_image

    def load(self, query, candidate: str, with_matches: bool, box=None) -> Pair:
        q = self._query(query)
        c = decode(candidate)
        qi, ci = (to_qimage(q, SHOW_SIDE) if q is not None else None), to_qimage(c, SHOW_SIDE)
        if q is None:
            return Pair(None, ci)
        qs = np.array([qi.width() / q.width, qi.height() / q.height])  # into the shown copies' pixels
        shown_box = tuple(np.array(box, float) * np.tile(qs, 2)) if box else None
        if not with_matches:
            return Pair(qi, ci, box=shown_box)
        from edgeret.rerank.sv import SvReranker

        if self._sv is None:
            self._sv = SvReranker(threads=1)
        m = self._sv.matches(RegionQuery(q, as_box(box, q.size)) if box else q, c)  # as the re-ranker matched it
        cs = np.array([ci.width() / c.width, ci.height() / c.height])
        return Pair(qi, ci, m.query_xy * qs, m.candidate_xy * cs, box=shown_box)

    def shutdown(self) -> None:
        self.latest += 1
        self.pool.waitForDone(10_000)


class PairView(QGraphicsView):
    """The two photos on one scene at the same height, so lines can join their points; zoom keeps both in step."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor("#2d2d2d"))
        self.fitting = True
        self.lines = []
        self.candidate_scale = 1.0  # scene units per candidate pixel

    def show_pair(self, pair: Pair, draw_lines: bool, caption: str | None = None) -> None:
        scene = self.scene()
        scene.clear()
        self.lines = []
        c = pair.candidate
        height = max(c.height(), pair.query.height() if pair.query is not None else 0)
        x = 0.0
        qs = 1.0
        if pair.query is not None:
            qs = height / pair.query.height()
            scene.addPixmap(QPixmap.fromImage(pair.query)).setScale(qs)
            x = pair.query.width() * qs + GAP
        elif caption:
            text = scene.addText(caption)
            text.setDefaultTextColor(QColor("white"))
            text.setTextWidth(height * 0.6)
            x = height * 0.6 + GAP
        self.candidate_scale = height / c.height()
        item = scene.addPixmap(QPixmap.fromImage(c))
        item.setScale(self.candidate_scale)
        item.setPos(x, 0)
        if pair.box is not None and pair.query is not None:
            x0, y0, x1, y1 = (v * qs for v in pair.box)
            scene.addRect(x0, y0, x1 - x0, y1 - y0, QPen(QColor("#f6e05e"), max(2.0, height / 300)))
        if draw_lines and pair.query_xy is not None and len(pair.query_xy):
            self._draw_lines(pair, qs, x)
        scene.setSceneRect(QRectF(0, 0, x + c.width() * self.candidate_scale, height))
        if self.fitting:
            self.fit()

    def _draw_lines(self, pair: Pair, qs: float, x: float) -> None:
        step = max(1, len(pair.query_xy) // MAX_LINES)
        width = max(1.0, self.scene().sceneRect().height() / 400)
        for i, ((qx, qy), (cx, cy)) in enumerate(zip(pair.query_xy[::step], pair.candidate_xy[::step], strict=True)):
            colour = QColor.fromHsvF((i * 0.137) % 1.0, 0.7, 1.0)
            line = self.scene().addLine(qx * qs, qy * qs, x + cx * self.candidate_scale, cy * self.candidate_scale,
                                        QPen(colour, width))
            self.lines.append(line)
            for px, py in ((qx * qs, qy * qs), (x + cx * self.candidate_scale, cy * self.candidate_scale)):
                self.lines.append(self.scene().addEllipse(px - 2 * width, py - 2 * width, 4 * width, 4 * width,
                                                          QPen(colour, width)))

    def fit(self) -> None:
        self.fitting = True
        if not self.scene().sceneRect().isEmpty():
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def actual_size(self) -> None:
        """1:1: one pixel of the (shown copy of the) result photo per screen pixel."""
        self.fitting = False
        self.resetTransform()
        self.scale(1 / self.candidate_scale, 1 / self.candidate_scale)

    def zoom(self, factor: float) -> None:
        self.fitting = False
        self.scale(factor, factor)

    def zoom_factor(self) -> float:
        return self.transform().m11() * self.candidate_scale  # screen pixels per result pixel

    def wheelEvent(self, event) -> None:  # noqa: N802
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.fitting:
            self.fit()

    def line_count(self) -> int:
        return sum(1 for item in self.lines if item.type() == 6)  # QGraphicsLineItem.Type


class CompareView(QWidget):
    """Header (verdict badge, what the re-ranker said), the pair view with zoom controls, and the numbers."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("compareView")
        self.badge = QLabel("")
        self.badge.setObjectName("verdictBadge")
        self.headline = WrapLabel("Select a result to compare it with the query.")
        self.fit_button = self._tool("Fit", "Fit both photos in the view", lambda: self.view.fit())
        self.one_button = self._tool("1:1", "Actual size: one photo pixel per screen pixel",
                                     lambda: self.view.actual_size())
        self.out_button = self._tool("−", "Zoom out (mouse wheel)", lambda: self.view.zoom(0.8))
        self.in_button = self._tool("+", "Zoom in (mouse wheel)", lambda: self.view.zoom(1.25))
        self.show_matches = QCheckBox("Show matched points")
        self.show_matches.setChecked(True)
        self.show_matches.setToolTip("Lines join the points spatial verification found in both photos")
        self.view = PairView()
        self.details = WrapLabel("")
        self.details.setObjectName("compareDetails")
        top = QHBoxLayout()
        top.addWidget(self.badge)
        top.addWidget(self.headline, 1)
        tools = QHBoxLayout()
        for b in (self.fit_button, self.one_button, self.out_button, self.in_button):
            tools.addWidget(b)
        tools.addWidget(self.show_matches)
        tools.addStretch()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addLayout(tools)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.details)
        self.pair: Pair | None = None
        self.caption: str | None = None
        self.show_matches.toggled.connect(self._redraw)
        self.set_verdict(None, "")

    def _tool(self, text: str, tip: str, slot) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    def set_verdict(self, verdict: Verdict | None, headline: str, details: str = "") -> None:
        if verdict is None:
            self.badge.hide()
        else:
            fill, ink = badge_colours(verdict)
            border = "none" if fill is not None else f"1px dashed {ink.name()}"
            self.badge.setStyleSheet(f"QLabel#verdictBadge {{ background: {fill.name() if fill else 'transparent'};"
                                     f" color: {ink.name()}; border: {border}; border-radius: 8px;"
                                     " padding: 3px 10px; font-weight: bold; }")
            self.badge.setText(verdict.value)
            self.badge.show()
        self.headline.setText(headline)
        self.details.setText(details)

    def show_pair(self, pair: Pair, matches_available: bool, caption: str | None = None) -> None:
        self.pair, self.caption = pair, caption
        self.show_matches.setVisible(matches_available)
        self._redraw()

    def clear(self, text: str = "Select a result to compare it with the query.") -> None:
        self.pair = None
        self.view.scene().clear()
        self.view.lines = []
        self.set_verdict(None, text)

    def _redraw(self) -> None:
        if self.pair is not None:
            self.view.show_pair(self.pair, self.show_matches.isVisible() and self.show_matches.isChecked(),
                                self.caption)

    def matched_points(self) -> int:
        return 0 if self.pair is None or self.pair.query_xy is None else len(self.pair.query_xy)


def headline_for(verdict: Verdict | None, reranker_name: str | None, p_same: float | None, points: int | None) -> str:
    """One sentence saying what the re-ranker concluded, in words."""
    who = (reranker_name or "").capitalize() if (reranker_name or "").startswith("spatial") else \
        f"The {reranker_name}"
    if verdict is None:
        return "Not checked: checking is off, so only the similarity ranks this photo."
    if verdict is Verdict.UNCHECKED:
        return f"Not checked yet: {who[0].lower() + who[1:]} will judge this photo shortly."
    if verdict is Verdict.UNJUDGED:
        return f"{who} could not read this photo."
    said = f"{who} gives P(same object) = {p_same:.2f}"
    if points is not None:
        said += f"; {points} points match geometrically in both photos"
    return said + "."
