"""The Duplicates tab: "Find duplicates" runs edgeret.duplicates.find_duplicates on a worker thread with progress;
groups are listed by kind (identical files, the same picture, similar shots) with their evidence, and the chosen
group's photos shown side by side, large, the proposed original first. The user ticks which to keep (default: the
proposed original) and moves the others to a folder outside the library (edgeret.duplicates.move_duplicates: never
deleted, an undo log written first); Undo puts them back. Counts update as soon as a move or undo is done."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from edgeret.duplicates import COPY_KINDS, IDENTICAL, SAME_PICTURE, SIMILAR, EvidenceWords, Group, Member
from edgeret.fsnames import display
from edgeret.settings import DUPLICATE_K, DUPLICATE_THRESHOLD
from edgeret.thumbnails import ThumbnailCache

from .grid import PhotoGrid
from .item_models import GroupMembersModel
from .thumbs import ThumbLoader
from .wording import size as human_size
from .workers import DuplicatesWorker, MoveWorker

GROUP_ROLE = Qt.ItemDataRole.UserRole + 1
LARGE = 480  # largest side of the member previews, px (also the size of their thumbnail cache)
CARD_PADDING = 11  # the margin inside a card and around the row of cards, px (set, so the fit can count it)
SMALLEST = 220  # below this the previews stop shrinking to fit and the row scrolls instead
TITLES = {IDENTICAL: "Identical files", SAME_PICTURE: "The same picture", SIMILAR: "Similar shots"}


WORDS = EvidenceWords(original="★ proposed original", identical="identical file", similarity="similarity {0:.3f}",
                      picture="hash {0}/64 bits apart, thumbnails {1:.3f}", p_same="P(same) {0:.2f}", sep=" · ")


def evidence(m: Member) -> str:
    """A member's evidence against its group's proposed original, in words."""
    return m.evidence(WORDS)


class MemberCard(QFrame):
    """One member: its picture large, the evidence, its size, and a Keep box."""

    def __init__(self, member: Member, keep: bool, parent=None):
        super().__init__(parent)
        self.member = member
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._picture: QImage | None = None
        self.image = QLabel("…")
        self.image.setFixedSize(1, 1)  # set_side below sizes it
        self.image.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)  # pictures line up
        self.image.setToolTip("Right-click: Find this object, Open, Reveal in file manager, Copy path")
        self.keep = QCheckBox("Keep")
        self.keep.setChecked(keep)
        self.keep.setToolTip("Kept photos stay where they are; the others of the group are moved")
        self._full_name = display(Path(member.path).name)
        self.name = QLabel(self._full_name)
        self.name.setToolTip(display(member.path))
        self.caption = QLabel(f"{evidence(member)}\n{member.width}×{member.height} · {human_size(member.size)}")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(CARD_PADDING, CARD_PADDING, CARD_PADDING, CARD_PADDING)
        # the decision first: on a 768-px-high screen the large picture is what gets cut, not the Keep box
        lay.addWidget(self.keep)
        lay.addWidget(self.name)
        lay.addWidget(self.caption)
        lay.addWidget(self.image)
        lay.addStretch(1)
        self.set_side(SMALLEST)

    def set_image(self, image: QImage) -> None:
        self._picture = image
        self._draw()

    def set_side(self, side: int) -> None:
        """Show the picture in a side×side square (the caption wraps to that width)."""
        if side != self.image.width():
            self.image.setFixedSize(side, side)
            self.caption.setFixedWidth(side)
            # a long file name is shortened in its middle, not cut
            self.name.setText(self.fontMetrics().elidedText(self._full_name, Qt.TextElideMode.ElideMiddle, side))
            self.setFixedWidth(side + 2 * (CARD_PADDING + self.frameWidth()))
            self._draw()

    def chrome_height(self) -> int:
        """The card's height without its picture: Keep box, name, caption and margins."""
        return self.sizeHint().height() - self.image.height()

    def _draw(self) -> None:
        image = self._picture
        if image is None:
            return
        if image.isNull():
            self.image.setText("cannot show this photo")
            return
        side = self.image.width()
        self.image.setPixmap(QPixmap.fromImage(image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                                             Qt.TransformationMode.SmoothTransformation))


class DuplicatesView(QWidget):
    library_changed = Signal()  # photos were moved out of (or back into) the library's folders

    def __init__(self, library: Path, thumbs: ThumbLoader, parent=None):
        super().__init__(parent)
        self.library = library
        self.worker: DuplicatesWorker | None = None
        self.mover: MoveWorker | None = None
        self.groups: list[Group] = []
        self.logs: list[tuple[str, list[Group]]] = []  # undo logs, newest last, with the groups as they were
        self.move_dest: Path | None = None  # the folder chosen last (the dialog opens there)
        self.verifier = ""  # who judged the borderline pairs of the last search ("" when nobody did)
        self._rows: list[int] = []  # group list row -> index in self.groups (-1: a kind's heading)
        self.large = ThumbLoader(ThumbnailCache(thumbs.cache.folder, size=LARGE), threads=1, parent=self)
        self.large.ready.connect(self._large_ready)
        self.find = QPushButton("Find duplicates")
        self.cancel = QPushButton("Cancel")
        self.cancel.hide()
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.50, 1.00)
        self.threshold.setSingleStep(0.01)
        self.threshold.setDecimals(2)
        self.threshold.setValue(DUPLICATE_THRESHOLD)
        self.threshold.setToolTip("Cosine similarity from which two different photos count as similar shots; "
                                  "identical files and the same picture are found whatever their similarity")
        self.verify = QCheckBox("Verify borderline pairs")
        self.verify.setToolTip("Similar pairs near the threshold are judged by the re-ranker (the multimodal LLM "
                               "when it is installed, else spatial verification)")
        self.bar = QProgressBar()
        self.bar.hide()
        self.status = QLabel("Identical files, the same picture in other versions, and similar shots. Nothing is "
                             "deleted: moved photos go to a folder you choose, and Undo brings them back.")
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.find)
        top.addWidget(QLabel("Similar shots from"))
        top.addWidget(self.threshold)
        top.addWidget(self.verify)
        top.addWidget(self.cancel)
        top.addWidget(self.bar, 1)
        self.group_list = QListWidget()
        self.model = GroupMembersModel(thumbs, parent=self)  # the members as tiles (drag out, context menu)
        self.grid = PhotoGrid(n_lines=2)
        self.grid.setModel(self.model)
        self.grid.setObjectName("duplicatesGrid")
        self.grid.setMaximumHeight(150)
        self.cards: list[MemberCard] = []
        self.card_row = QHBoxLayout()
        self.card_row.setContentsMargins(CARD_PADDING, CARD_PADDING, CARD_PADDING, CARD_PADDING)
        self.card_row.addStretch(1)
        strip = QWidget()
        strip.setLayout(self.card_row)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(strip)
        self.scroll.viewport().installEventFilter(self)  # the previews grow and shrink with the space they have
        self.group_title = QLabel("")
        self.group_title.setWordWrap(True)
        self.move = QPushButton("Move the others to…")
        self.move.setToolTip("Move the photos not kept to a folder outside the library (never deleted)")
        self.move.setEnabled(False)
        self.undo = QPushButton("Undo last move")
        self.undo.setEnabled(False)
        actions = QHBoxLayout()
        actions.addWidget(self.move)
        actions.addWidget(self.undo)
        actions.addStretch(1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addWidget(self.group_title)
        rl.addWidget(self.scroll, 1)
        rl.addLayout(actions)
        rl.addWidget(self.grid)
        split = QSplitter()
        split.addWidget(self.group_list)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([280, 800])
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)
        self.find.clicked.connect(self.start)
        self.cancel.clicked.connect(self._cancel)
        self.group_list.currentRowChanged.connect(self._show_row)
        self.move.clicked.connect(self._ask_move)
        self.undo.clicked.connect(self.undo_last)

    # finding ------------------------------------------------------------------------------------------------
    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def start(self) -> None:
        if self.running() or self.mover is not None:
            return
        w = self.worker = DuplicatesWorker(self.library, self.threshold.value(), k=DUPLICATE_K,
                                           verify=self.verify.isChecked(), parent=self)
        w.progress.connect(self._progress)
        w.found.connect(self._found)
        w.failed.connect(self._failed)
        w.finished.connect(self._finished)
        self.find.setEnabled(False)
        self.cancel.show()
        self.bar.setRange(0, 0)  # busy until the first report
        self.bar.show()
        self.status.setText("looking for duplicates…")
        w.start()

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _progress(self, done: int, total: int, stage: str) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done)
        self.status.setText(f"{stage}: {done:,} of {total:,}")

    def _found(self, groups: list, verifier: str) -> None:
        self.verifier = verifier
        self._set_groups(groups)

    def _set_groups(self, groups: list[Group]) -> None:
        self.groups = [g for g in groups if len(g.members) > 1]
        self.group_list.clear()
        self._rows = []
        for kind in (IDENTICAL, SAME_PICTURE, SIMILAR):
            mine = [i for i, g in enumerate(self.groups) if g.kind == kind]
            if not mine:
                continue
            head = QListWidgetItem(f"{TITLES[kind]} ({len(mine)})")
            head.setFlags(Qt.ItemFlag.NoItemFlags)
            font = head.font()
            font.setBold(True)
            head.setFont(font)
            self.group_list.addItem(head)
            self._rows.append(-1)
            for i in mine:
                g = self.groups[i]
                item = QListWidgetItem(f"{len(g.members)} photos · {display(Path(g.original.path).name)}")
                item.setData(GROUP_ROLE, i)
                item.setToolTip("\n".join(f"{display(m.path)}: {evidence(m)}" for m in g.members))
                self.group_list.addItem(item)
                self._rows.append(i)
        self.status.setText(self.summary())
        first = next((r for r, i in enumerate(self._rows) if i >= 0), None)
        if first is not None:
            self.group_list.setCurrentRow(first)
        else:
            self._show_group(None)

    def summary(self) -> str:
        """The counts line: groups of each kind, how many photos moving out would free."""
        if not self.groups:
            return "no duplicates found" + self._judged()
        n = {k: sum(g.kind == k for g in self.groups) for k in TITLES}
        copies = sum(len(g.copies) for g in self.groups if g.kind in COPY_KINDS)
        return (f"{n[IDENTICAL]} groups of identical files, {n[SAME_PICTURE]} of the same picture ({copies} extra "
                f"copies), {n[SIMILAR]} of similar shots{self._judged()}")

    def _judged(self) -> str:
        if not self.verifier:
            return ""
        return f"; borderline pairs judged by {self.verifier}: {sum(g.verified for g in self.groups)} confirmed"

    def _show_row(self, row: int) -> None:
        rows = self._rows
        self._show_group(self.groups[rows[row]] if 0 <= row < len(rows) and rows[row] >= 0 else None)

    def current_group(self) -> Group | None:
        item = self.group_list.currentItem()
        i = item.data(GROUP_ROLE) if item is not None else None
        return self.groups[i] if i is not None and 0 <= i < len(self.groups) else None

    def _show_group(self, g: Group | None) -> None:
        for card in self.cards:
            self.card_row.removeWidget(card)
            card.deleteLater()
        self.cards = []
        self.model.set_members(g.members if g is not None else [])
        self.move.setEnabled(g is not None and self.mover is None)
        if g is None:
            self.group_title.setText("")
            return
        self.group_title.setText(f"{TITLES[g.kind]}: {len(g.members)} photos. Proposed original: "
                                 f"{display(Path(g.original.path).name)} ({g.why or 'the only full-size one'}).")
        for m in g.members:
            card = MemberCard(m, keep=m.original)
            card.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            card.customContextMenuRequested.connect(lambda pos, c=card: self.card_menu(c).exec(c.mapToGlobal(pos)))
            self.card_row.insertWidget(self.card_row.count() - 1, card)
            self.cards.append(card)
            self.large.request(m.path)
        self._fit_cards()

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize and watched is self.scroll.viewport():
            self._fit_cards()
        return super().eventFilter(watched, event)

    def _fit_cards(self) -> None:
        """One side for every preview: the members side by side in the width there is, as large as the height
        allows, never below SMALLEST (the row then scrolls)."""
        if not self.cards:
            return
        view = self.scroll.viewport()
        gap = self.card_row.spacing() + 2 * (self.cards[0].frameWidth() + CARD_PADDING)
        across = (view.width() - 2 * CARD_PADDING) // len(self.cards) - gap
        tall = view.height() - self.cards[0].chrome_height() - 2 * CARD_PADDING
        side = max(SMALLEST, min(LARGE, across, tall))
        for card in self.cards:
            card.set_side(side)
        lines = max(card.caption.heightForWidth(side) for card in self.cards)
        for card in self.cards:  # captions of one height, so the pictures start on one line
            card.caption.setMinimumHeight(lines)

    def card_menu(self, card: MemberCard):
        """A card's right-click menu: the tiles' own (Find this object, Open, Reveal, Copy path), for that photo."""
        row = next(r for r in range(self.model.rowCount()) if self.model.member(r).key == card.member.key)
        self.grid.setCurrentIndex(self.model.index(row, 0))  # the menu acts on this photo, not an earlier selection
        return self.grid.menu_for(card.member.key, card.member.path)

    def _large_ready(self, path: str, image: QImage) -> None:
        for card in self.cards:
            if card.member.path == path:
                card.set_image(image)

    def _failed(self, message: str) -> None:
        self.status.setText(f"error: {message}" if message != "cancelled" else "cancelled")

    def _finished(self) -> None:
        self.find.setEnabled(True)
        self.cancel.hide()
        self.bar.hide()
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None

    # moving -------------------------------------------------------------------------------------------------
    def kept(self) -> set[int]:
        return {c.member.key for c in self.cards if c.keep.isChecked()}

    def _ask_move(self) -> None:
        start = str(self.move_dest or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Move the others to (outside the library)", start)
        if folder:
            self.move_to(Path(folder))

    def move_to(self, dest: Path) -> None:
        """Move the current group's members that are not kept into `dest` (outside the library folders)."""
        g = self.current_group()
        if g is None or self.mover is not None:
            return
        keep = self.kept()
        if not keep:
            self.status.setText("keep at least one photo of the group")
            return
        if len(keep) == len(g.members):
            self.status.setText("every photo of the group is kept: nothing to move")
            return
        self.move_dest = dest
        self._start_mover(MoveWorker(self.library, group=g, keep=keep, dest=dest, parent=self))

    def undo_last(self) -> None:
        if not self.logs or self.mover is not None:
            return
        self._start_mover(MoveWorker(self.library, undo=self.logs[-1][0], parent=self))

    def _start_mover(self, w: MoveWorker) -> None:
        self.mover = w
        w.moved.connect(self._moved)
        w.undone.connect(self._undone)
        w.failed.connect(self._failed)
        w.finished.connect(self._mover_finished)
        self.move.setEnabled(False)
        self.undo.setEnabled(False)
        self.find.setEnabled(False)
        self.status.setText("moving…")
        w.start()

    def _moved(self, report, group: Group) -> None:
        moved = {e.src for e in report.moved}
        before = list(self.groups)
        shown = self.group_list.currentRow()
        self.groups = [g if g is not group else replace(g, members=[m for m in g.members if m.path not in moved])
                       for g in self.groups]
        self.logs.append((report.log, before))
        self._set_groups(self.groups)
        self.group_list.setCurrentRow(min(max(shown, 0), self.group_list.count() - 1))
        skipped = f"; {len(report.skipped)} skipped: {report.skipped[0][1]}" if report.skipped else ""
        self.status.setText(f"moved {len(moved)} photos to {display(str(self.move_dest))}{skipped} · "
                            + self.summary())
        self.library_changed.emit()

    def _undone(self, report, keys: dict) -> None:
        _, before = self.logs.pop()
        back = {e.dst for e in report.moved}
        self._set_groups([replace(g, members=[replace(m, key=keys[m.path]) if keys.get(m.path) is not None else m
                                              for m in g.members]) for g in before])
        skipped = f"; {len(report.skipped)} could not be moved back" if report.skipped else ""
        self.status.setText(f"put {len(back)} photos back{skipped} · " + self.summary())
        self.library_changed.emit()

    def _mover_finished(self) -> None:
        if self.mover is not None:
            self.mover.deleteLater()
        self.mover = None
        self.find.setEnabled(not self.running())
        self.move.setEnabled(self.current_group() is not None)
        self.undo.setEnabled(bool(self.logs))

    def shutdown(self) -> None:
        for w in (self.worker, self.mover):
            if w is not None:
                w.cancel()
                w.wait(30_000)
        self.large.shutdown()
