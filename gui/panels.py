"""Side panels: indexing progress, search settings, and the missing-model banner."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from edgeret import models
from edgeret.errors import EdgeretError
from edgeret.settings import LAMBDA, K

from .workers import ModelWorker, QuerySettings


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class RateMeter:
    """Photos per second and time left, from (done, total) reports; the clock pauses while indexing is paused."""

    def __init__(self):
        self.start = time.monotonic()
        self.paused_at: float | None = None

    def pause(self, paused: bool) -> None:
        if paused and self.paused_at is None:
            self.paused_at = time.monotonic()
        elif not paused and self.paused_at is not None:
            self.start += time.monotonic() - self.paused_at
            self.paused_at = None

    def rate_eta(self, done: int, total: int) -> tuple[float, float | None]:
        elapsed = max(1e-6, (self.paused_at or time.monotonic()) - self.start)
        rate = done / elapsed
        return rate, ((total - done) / rate if rate > 0 else None)


class IndexPanel(QGroupBox):
    """Count, rate, ETA and current file while indexing; pause/cancel; the failures with their reasons."""

    pause_toggled = Signal(bool)
    cancel_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__("Indexing", parent)
        self.bar = QProgressBar()
        self.counts = QLabel("idle")
        self.current = QLabel("")
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.cancel = QPushButton("Cancel")
        self.failures_label = QLabel("")
        self.failures = QListWidget()
        self.failures.setMaximumHeight(120)
        buttons = QHBoxLayout()
        buttons.addWidget(self.pause)
        buttons.addWidget(self.cancel)
        lay = QVBoxLayout(self)
        for w in (self.bar, self.counts, self.current):
            lay.addWidget(w)
        lay.addLayout(buttons)
        lay.addWidget(self.failures_label)
        lay.addWidget(self.failures)
        self.pause.toggled.connect(self._paused)
        self.cancel.clicked.connect(self.cancel_clicked)
        self.meter = RateMeter()
        self.set_running(False)
        self.show_failures([])

    def set_running(self, running: bool) -> None:
        self.pause.setEnabled(running)
        self.cancel.setEnabled(running)
        self.bar.setVisible(running)
        if running:
            self.meter = RateMeter()
            self.bar.setRange(0, 0)  # busy until the first report gives the total (scanning the folders)
            self.counts.setText("scanning folders…")
            self.current.setText("")
            self.pause.setChecked(False)

    def _paused(self, paused: bool) -> None:
        self.pause.setText("Resume" if paused else "Pause")
        self.meter.pause(paused)
        self.pause_toggled.emit(paused)

    def on_progress(self, done: int, total: int, path: str) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done)
        rate, eta = self.meter.rate_eta(done, total)
        eta_text = f" · ETA {_duration(eta)}" if eta is not None and done < total else ""
        paused = " · paused" if self.pause.isChecked() else ""
        self.counts.setText(f"{done:,} / {total:,} photos · {rate:.1f}/s{eta_text}{paused}")
        self.current.setText(Path(path).name)
        self.current.setToolTip(path)

    def finish(self, text: str) -> None:
        self.set_running(False)
        self.counts.setText(text)
        self.current.setText("")

    def show_failures(self, failures: list[tuple[str, str]]) -> None:
        self.failures.clear()
        for path, reason in failures:
            self.failures.addItem(f"{Path(path).name}: {reason}")
            self.failures.item(self.failures.count() - 1).setToolTip(path)
        self.failures_label.setText(f"Failures ({len(failures)})" if failures else "")
        self.failures.setVisible(bool(failures))
        self.failures_label.setVisible(bool(failures))


class SettingsPanel(QGroupBox):
    """k, λ, re-ranker on/off, re-ranker model and threads; settings() is what the next query uses."""

    changed = Signal()

    def __init__(self, threads: int, encoder: str | None = None, text_encoder: str | None = None, parent=None):
        super().__init__("Search", parent)
        self.encoder = encoder
        self.k = QSpinBox()
        self.k.setRange(1, 500)
        self.k.setValue(K)
        self.lam = QDoubleSpinBox()
        self.lam.setRange(0.0, 1.0)
        self.lam.setSingleStep(0.05)
        self.lam.setValue(LAMBDA)
        self.lam.setToolTip("final = λ · first-stage score + (1 − λ) · P(same)")
        self.rerank = QCheckBox("Re-rank the first-stage results")
        self.rerank.setChecked(True)
        self.kind = QComboBox()
        self.kind.addItem("multimodal LLM", "mllm")
        self.kind.addItem("spatial verification (no model)", "sv")
        self.kind.addItem("both, averaged", "mllm+sv")
        self.model = QComboBox()
        self.custom = QPushButton("GGUF files…")
        self.custom.setToolTip("Use a GGUF text model and its mmproj from disk")
        self.text_encoder = QLineEdit(text_encoder or "")
        self.text_encoder.setPlaceholderText("the one pairing the library")
        self.text_encoder.setToolTip("Text tower for text search: a registry name or a model folder")
        self.threads = QSpinBox()
        self.threads.setRange(1, 256)
        self.threads.setValue(threads)
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(self.custom)
        form = QFormLayout(self)
        form.addRow("Results (k)", self.k)
        form.addRow("λ", self.lam)
        form.addRow(self.rerank)
        form.addRow("Re-ranker", self.kind)
        form.addRow("Model", row)
        form.addRow("Text encoder", self.text_encoder)
        form.addRow("Threads", self.threads)
        self.refresh_models()
        self.custom.clicked.connect(self._choose_files)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        for sig in (self.k.valueChanged, self.lam.valueChanged, self.rerank.toggled, self.kind.currentIndexChanged,
                    self.model.currentIndexChanged, self.threads.valueChanged, self.text_encoder.editingFinished):
            sig.connect(self.changed)

    def _kind_changed(self, _index: int) -> None:
        self.model.setEnabled(self.kind.currentData() != "sv")  # spatial verification needs no model
        self.custom.setEnabled(self.kind.currentData() != "sv")

    def refresh_models(self) -> None:
        """List the registry's re-rankers, marking which are installed; keeps the current choice."""
        current = self.model.currentData()
        self.model.blockSignals(True)
        self.model.clear()
        try:
            entries = [m for m in models.list_models() if m["role"] == "reranker"]
        except EdgeretError:
            entries = []
        for m in sorted(entries, key=lambda m: (not m["default"], m["name"])):
            state = "installed" if m["installed"] else f"not installed, {_size(m['size'])}"
            self.model.addItem(f"{m['name']} ({state})", ("registry", m["name"]))
        if isinstance(current, tuple) and current[0] == "files":
            self.set_custom_files(*current[1:])
        elif current is not None and (i := self.model.findData(current)) >= 0:
            self.model.setCurrentIndex(i)
        self.model.blockSignals(False)

    def set_custom_files(self, vlm: str, mmproj: str) -> None:
        data = ("files", vlm, mmproj)
        if (i := self.model.findData(data)) < 0:
            self.model.addItem(f"{Path(vlm).name} + {Path(mmproj).name}", data)
            i = self.model.count() - 1
        self.model.setCurrentIndex(i)

    def _choose_files(self) -> None:
        vlm, _ = QFileDialog.getOpenFileName(self, "GGUF text model", "", "GGUF (*.gguf)")
        if not vlm:
            return
        mmproj, _ = QFileDialog.getOpenFileName(self, "Its mmproj (vision projector)", str(Path(vlm).parent),
                                                "GGUF (*.gguf)")
        if mmproj:
            self.set_custom_files(vlm, mmproj)

    def save_to(self, prefs: QSettings) -> None:
        """Remember the search settings (threads and the text encoder come from the command line)."""
        prefs.setValue("search/k", self.k.value())
        prefs.setValue("search/lambda", self.lam.value())
        prefs.setValue("search/rerank", self.rerank.isChecked())
        prefs.setValue("search/reranker", self.kind.currentData())
        prefs.setValue("search/model", json.dumps(self.model.currentData()))

    def restore_from(self, prefs: QSettings) -> None:
        """Apply what save_to() remembered; a re-ranker whose files are gone is left unselected."""
        self.k.setValue(int(prefs.value("search/k", self.k.value(), type=int)))
        self.lam.setValue(float(prefs.value("search/lambda", self.lam.value(), type=float)))
        self.rerank.setChecked(bool(prefs.value("search/rerank", self.rerank.isChecked(), type=bool)))
        if (i := self.kind.findData(prefs.value("search/reranker", self.kind.currentData()))) >= 0:
            self.kind.setCurrentIndex(i)
        try:
            model = json.loads(prefs.value("search/model", "null"))
        except (TypeError, ValueError):
            model = None
        if isinstance(model, list) and model[:1] == ["files"] and all(Path(p).is_file() for p in model[1:3]):
            self.set_custom_files(*model[1:3])
        elif isinstance(model, list) and (i := self.model.findData(tuple(model))) >= 0:
            self.model.setCurrentIndex(i)

    def settings(self) -> QuerySettings:
        data = self.model.currentData()
        model = vlm = mmproj = None
        if isinstance(data, tuple) and data[0] == "files":
            vlm, mmproj = data[1], data[2]
        elif isinstance(data, tuple):
            model = data[1]
        return QuerySettings(k=self.k.value(), lam=self.lam.value(), rerank=self.rerank.isChecked(),
                             reranker=self.kind.currentData(), model=model, vlm=vlm, mmproj=mmproj,
                             threads=self.threads.value(), encoder=self.encoder,
                             text_encoder=self.text_encoder.text().strip() or None)


class ModelPanel(QFrame):
    """A banner naming a missing model, with download (progress, cancel) or offline import; browsing goes on."""

    installed = Signal(str, str)  # role, model name

    WHY = {
        "encoder": "The image encoder is needed to index photos and to search them.",
        "reranker": "Without the re-ranker, results are first-stage only (no “same object” probability).",
    }

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("modelPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.role = self.name = None
        self.worker: ModelWorker | None = None
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.download = QPushButton("Download")
        self.import_ = QPushButton("Import files…")
        self.cancel = QPushButton("Cancel")
        self.dismiss = QPushButton("Dismiss")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.detail = QLabel()
        buttons = QHBoxLayout()
        for b in (self.download, self.import_, self.cancel, self.dismiss):
            buttons.addWidget(b)
        buttons.addStretch()
        lay = QVBoxLayout(self)
        lay.addWidget(self.message)
        lay.addLayout(buttons)
        lay.addWidget(self.bar)
        lay.addWidget(self.detail)
        self.download.clicked.connect(self.start_download)
        self.import_.clicked.connect(self._choose_import)
        self.cancel.clicked.connect(self._cancel)
        self.dismiss.clicked.connect(self.hide)
        self._busy(False)
        self.hide()

    def show_missing(self, role: str, name: str, message: str) -> None:
        if self.worker is not None:
            return  # an install is already under way
        self.role, self.name = role, name
        try:
            info = models.get(name)
            what = f"“{name}” ({_size(info.size)}, {info.licence})"
            self.download.setText(f"Download {_size(info.size)}")
            self.download.setVisible(True)
        except EdgeretError:  # a path, not a registry model: nothing to download
            what = f"“{name}”"
            self.download.setVisible(False)
        kind = "image encoder" if role == "encoder" else "re-ranker model"
        self.message.setText(
            f"<b>The {kind} {what} is not installed.</b> {self.WHY.get(role, '')} Download it now, or import the "
            f"files copied from another machine. You can keep browsing meanwhile."
        )
        self.message.setToolTip(message)
        self.detail.setText("")
        self.show()

    def _busy(self, busy: bool) -> None:
        self.bar.setVisible(busy)
        self.cancel.setVisible(busy)
        for b in (self.download, self.import_, self.dismiss):
            b.setEnabled(not busy)

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def start_download(self) -> None:
        self._start(ModelWorker(name=self.name, parent=self))

    def _choose_import(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, f"Folder holding the files of {self.name}")
        if folder:
            self.import_from(folder)

    def import_from(self, path: str) -> None:
        self._start(ModelWorker(name=self.name if _is_registry(self.name) else None, path=path, parent=self))

    def _start(self, worker: ModelWorker) -> None:
        self.worker = worker
        worker.progress.connect(self._progress)
        worker.installed.connect(self._installed)
        worker.failed.connect(self._failed)
        worker.finished.connect(self._finished)
        self.bar.setValue(0)
        self.detail.setText("starting…")
        self._busy(True)
        worker.start()

    def _progress(self, done: int, total: int, file: str) -> None:
        self.bar.setValue(int(1000 * done / total) if total else 0)
        self.detail.setText(f"{file}: {_size(done)} of {_size(total)}")

    def _installed(self, name: str, folder: str) -> None:
        self.detail.setText(f"installed in {folder}")
        self.hide()
        self.installed.emit(self.role or "", name)

    def _failed(self, message: str) -> None:
        self.detail.setText(message)

    def _finished(self) -> None:
        self._busy(False)
        self.worker.deleteLater()
        self.worker = None

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(10_000)


def _is_registry(name: str | None) -> bool:
    try:
        return name is not None and models.get(name) is not None
    except EdgeretError:
        return False


