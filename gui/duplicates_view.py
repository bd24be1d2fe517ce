"""The Duplicates tab: "Find duplicates" runs edgeret.duplicates.find_duplicates on a worker thread with progress;
groups are listed on the left and the chosen group's photos shown side by side, the original first and marked.
"Verify borderline pairs" lets a re-ranker judge the pairs near the threshold. Nothing is moved or deleted here."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from edgeret.fsnames import display
from edgeret.settings import DUPLICATE_K, DUPLICATE_THRESHOLD

from .grid import PhotoGrid
from .item_models import GroupMembersModel
from .thumbs import ThumbLoader
from .workers import DuplicatesWorker

GROUP_ROLE = Qt.ItemDataRole.UserRole + 1


class DuplicatesView(QWidget):
    def __init__(self, library: Path, thumbs: ThumbLoader, parent=None):
        super().__init__(parent)
        self.library = library
        self.worker: DuplicatesWorker | None = None
        self.groups: list = []
        self.find = QPushButton("Find duplicates")
        self.cancel = QPushButton("Cancel")
        self.cancel.hide()
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.50, 1.00)
        self.threshold.setSingleStep(0.01)
        self.threshold.setDecimals(2)
        self.threshold.setValue(DUPLICATE_THRESHOLD)
        self.threshold.setToolTip("Cosine similarity above which two photos count as the same")
        self.verify = QCheckBox("Verify borderline pairs")
        self.verify.setToolTip("Pairs near the threshold are judged by the re-ranker (the multimodal LLM when it is "
                               "installed, else spatial verification)")
        self.bar = QProgressBar()
        self.bar.hide()
        self.status = QLabel("Groups of copies and near-copies in the library. Nothing is moved or deleted.")
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.find)
        top.addWidget(QLabel("Similarity at least"))
        top.addWidget(self.threshold)
        top.addWidget(self.verify)
        top.addWidget(self.cancel)
        top.addWidget(self.bar, 1)
        self.group_list = QListWidget()
        self.model = GroupMembersModel(thumbs, parent=self)
        self.grid = PhotoGrid(n_lines=2)
        self.grid.setModel(self.model)
        self.grid.setObjectName("duplicatesGrid")
        split = QSplitter()
        split.addWidget(self.group_list)
        split.addWidget(self.grid)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 800])
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)
        self.find.clicked.connect(self.start)
        self.cancel.clicked.connect(self._cancel)
        self.group_list.currentRowChanged.connect(self._show_group)

    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def start(self) -> None:
        if self.running():
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
        self.groups = groups
        self.group_list.clear()
        self.model.set_members([])
        for g in groups:
            item = QListWidgetItem(f"{len(g.members)} photos · {display(Path(g.original.path).name)}")
            item.setToolTip("\n".join(display(m.path) for m in g.members))
            self.group_list.addItem(item)
        copies = sum(len(g.copies) for g in groups)
        judged = f"; borderline pairs judged by {verifier}: {sum(g.verified for g in groups)} confirmed" \
            if verifier else ""
        self.status.setText(f"{len(groups)} groups, {copies} extra copies{judged} (nothing moved or deleted)"
                            if groups else f"no duplicates found{judged}")
        if groups:
            self.group_list.setCurrentRow(0)

    def _show_group(self, row: int) -> None:
        self.model.set_members(self.groups[row].members if 0 <= row < len(self.groups) else [])

    def _failed(self, message: str) -> None:
        self.status.setText(f"error: {message}" if message != "cancelled" else "cancelled")

    def _finished(self) -> None:
        self.find.setEnabled(True)
        self.cancel.hide()
        self.bar.hide()
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(30_000)
