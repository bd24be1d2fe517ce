"""Side panels: indexing progress, search settings (the everyday ones; the rest live in Preferences), and the
missing-model banner."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Signal
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
from edgeret.fsnames import display
from edgeret.rerankers import installed_reranker
from edgeret.settings import LAMBDA, K
from edgeret.verdicts import Thresholds

from .downloads import PURPOSE, is_installed, is_registry, outcome
from .messages import StatusLine, WrapLabel
from .wording import for_desktop
from .wording import size as _size
from .workers import InstallsModels, ModelWorker, QuerySettings


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
        self.counts = WrapLabel("idle")
        self.current = StatusLine()  # a long file name is elided, never widens the panel
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
            self.current.show_text("")
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
        self.current.show_text(display(Path(path).name))
        self.current.setToolTip(display(path))

    def finish(self, text: str) -> None:
        self.set_running(False)
        self.counts.setText(text)
        self.current.show_text("")

    def show_failures(self, failures: list[tuple[str, str]]) -> None:
        self.failures.clear()
        for path, reason in failures:
            self.failures.addItem(f"{Path(path).name}: {reason}")
            self.failures.item(self.failures.count() - 1).setToolTip(path)
        self.failures_label.setText(f"Failures ({len(failures)})" if failures else "")
        self.failures.setVisible(bool(failures))
        self.failures_label.setVisible(bool(failures))


class SettingsPanel(QGroupBox):
    """What the next query uses. Shown in the side panel: how many results and who checks them (with the reason
    for the default); λ, threads, the re-ranker model, the text encoder and the verdict thresholds are edited in
    the Preferences dialog (gui.prefs_dialog), which holds these same widgets."""

    changed = Signal()
    reranker_changed = Signal()  # the user turned checking on/off or chose another re-ranker: re-run the query
    get_llm = Signal()  # "Get the multimodal LLM…" was clicked

    KINDS = (("multimodal LLM", "mllm"), ("spatial verification", "sv"), ("both, averaged", "mllm+sv"))

    def __init__(self, threads: int, encoder: str | None = None, text_encoder: str | None = None, parent=None):
        super().__init__("Search", parent)
        self.encoder = encoder
        self.k = QSpinBox()
        self.k.setRange(1, 500)
        self.k.setValue(K)
        self.k.setToolTip("How many photos each search returns (and the re-ranker checks)")
        self.rerank = QCheckBox("Check each result with")
        self.rerank.setToolTip("Ask a re-ranker whether each result shows the same object as the query")
        self.kind = QComboBox()
        for text, data in self.KINDS:
            self.kind.addItem(text, data)
        self.reason = WrapLabel("")
        self.reason.setObjectName("rerankerReason")
        self.get_llm_button = QPushButton("Get the multimodal LLM…")
        self.get_llm_button.hide()
        self._build_preferences(threads, text_encoder)
        form = QFormLayout(self)
        form.addRow("Results", self.k)
        row = QHBoxLayout()
        row.addWidget(self.rerank)
        row.addWidget(self.kind, 1)
        form.addRow(row)
        form.addRow(self.reason)
        form.addRow(self.get_llm_button)
        self.refresh_models()
        self.use_installed()
        self.custom.clicked.connect(self._choose_files)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.get_llm_button.clicked.connect(self.get_llm)
        for sig in (self.rerank.toggled, self.kind.currentIndexChanged, self.model.currentIndexChanged):
            sig.connect(self._reranker_changed)
        for sig in (self.k.valueChanged, self.lam.valueChanged, self.rerank.toggled, self.kind.currentIndexChanged,
                    self.model.currentIndexChanged, self.threads.valueChanged, self.text_encoder.editingFinished,
                    self.same_at.valueChanged, self.different_below.valueChanged):
            sig.connect(self.changed)

    def _build_preferences(self, threads: int, text_encoder: str | None) -> None:
        """The widgets of the Preferences dialog (kept here so settings() reads one place)."""
        self.lam = QDoubleSpinBox()
        self.lam.setRange(0.0, 1.0)
        self.lam.setSingleStep(0.05)
        self.lam.setValue(LAMBDA)
        self.lam.setToolTip("Combined score = λ · similarity + (1 − λ) · P(same object)")
        self.model = QComboBox()
        self.custom = QPushButton("GGUF files…")
        self.custom.setToolTip("Use a GGUF text model and its mmproj from disk")
        self.text_encoder = QLineEdit(text_encoder or "")
        self.text_encoder.setPlaceholderText("the one that pairs with the library")
        self.text_encoder.setToolTip("Text tower for text search: a registry name or a model folder")
        self.threads = QSpinBox()
        self.threads.setRange(1, 256)
        self.threads.setValue(threads)
        self.sv_preview = QCheckBox("Quick spatial-verification verdicts while the multimodal LLM is cold")
        self.sv_preview.setToolTip("Photos whose visual tokens are not prepared yet get an sv verdict within a "
                                   "second or two; the LLM's verdict replaces it when it lands")
        self.sv_preview.setChecked(True)
        t = Thresholds()
        self.same_at = self._probability(t.same, "P(same object) at or above this: “Same object”")
        self.different_below = self._probability(t.different, "P(same object) below this: “Different”")

    @staticmethod
    def _probability(value: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 1.0)
        box.setSingleStep(0.05)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    # who checks the results ----------------------------------------------------------------------------------
    def use_installed(self) -> None:
        """Default to what is installed: the MLLM if present, else sv, else no checking; and say so."""
        kind, model = installed_reranker()
        with _quiet(self.rerank, self.kind, self.model):
            self.rerank.setChecked(kind is not None)
            if kind is not None:
                self.kind.setCurrentIndex(self.kind.findData(kind))
            if model is not None and (i := self.model.findData(("registry", model))) >= 0:
                self.model.setCurrentIndex(i)
        self._kind_changed(0)

    def mllm_available(self) -> bool:
        data = self.model.currentData()
        if isinstance(data, tuple) and data[0] == "files":
            return True
        return isinstance(data, tuple) and is_installed(data[1])

    def _kind_changed(self, _index: int = 0) -> None:
        kind = self.kind.currentData()
        self.model.setEnabled(kind != "sv")  # spatial verification needs no model
        self.custom.setEnabled(kind != "sv")
        self.kind.setEnabled(self.rerank.isChecked())
        self.reason.setText(self.explain())
        self.get_llm_button.setVisible(kind != "mllm" and not self.mllm_available() or
                                       (kind != "sv" and self.rerank.isChecked() and not self.mllm_available()))

    def explain(self) -> str:
        """One sentence on who checks the results and why."""
        if not self.rerank.isChecked():
            return "Results are ranked by similarity only: nothing checks whether they show the same object."
        kind, name = self.kind.currentData(), self.model_name()
        if kind == "sv":
            why = "" if self.mllm_available() else " (no multimodal LLM is installed)"
            return f"Spatial verification checks the results: it matches local details of the two photos{why}."
        if not self.mllm_available():
            return (f"The multimodal LLM {name} is not installed: results are ranked by similarity until it is. "
                    "Choose spatial verification to check them without it.")
        return f"The multimodal LLM {name} checks each result: is it the same object?"

    def model_name(self) -> str:
        data = self.model.currentData()
        if isinstance(data, tuple) and data[0] == "files":
            return Path(data[1]).name
        return data[1] if isinstance(data, tuple) else "?"

    def set_reranker(self, kind: str | None) -> None:
        """Choose who checks (None: nobody), as the user would."""
        if kind is None:
            self.rerank.setChecked(False)
            return
        self.kind.setCurrentIndex(self.kind.findData(kind))
        self.rerank.setChecked(True)

    def _reranker_changed(self, *_args) -> None:
        self._kind_changed()
        self.reranker_changed.emit()

    def active_reranker(self) -> str | None:
        """Who will judge the next photo query's results (None: nobody: first stage only)."""
        if not self.rerank.isChecked():
            return None
        kind = self.kind.currentData()
        return kind if kind == "sv" or self.mllm_available() else None

    def thresholds(self) -> Thresholds:
        same = self.same_at.value()
        return Thresholds(same=same, different=min(self.different_below.value(), same))

    # the re-ranker model --------------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """List the registry's re-rankers, marking which are installed; keeps the current choice."""
        current = self.model.currentData()
        with _quiet(self.model):
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
        self._kind_changed()

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

    # remembered between runs ----------------------------------------------------------------------------------
    def save_to(self, prefs: QSettings) -> None:
        """Remember the search settings (threads and the text encoder come from the command line)."""
        prefs.setValue("search/k", self.k.value())
        prefs.setValue("search/lambda", self.lam.value())
        prefs.setValue("search/rerank", self.rerank.isChecked())
        prefs.setValue("search/reranker", self.kind.currentData())
        prefs.setValue("search/model", json.dumps(self.model.currentData()))
        prefs.setValue("search/sv_preview", self.sv_preview.isChecked())
        prefs.setValue("verdict/same", self.same_at.value())
        prefs.setValue("verdict/different", self.different_below.value())

    def restore_from(self, prefs: QSettings) -> None:
        """Apply what save_to() remembered; a re-ranker whose files are gone is left unselected, and a remembered
        MLLM that is no longer installed gives way to what is."""
        self.k.setValue(int(prefs.value("search/k", self.k.value(), type=int)))
        self.lam.setValue(float(prefs.value("search/lambda", self.lam.value(), type=float)))
        self.sv_preview.setChecked(bool(prefs.value("search/sv_preview", True, type=bool)))
        self.same_at.setValue(float(prefs.value("verdict/same", self.same_at.value(), type=float)))
        self.different_below.setValue(float(prefs.value("verdict/different", self.different_below.value(),
                                                        type=float)))
        with _quiet(self.rerank, self.kind, self.model):
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
        if self.rerank.isChecked() and self.kind.currentData() != "sv" and not self.mllm_available():
            self.use_installed()
        self._kind_changed()

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
                             sv_preview=self.sv_preview.isChecked(),
                             text_encoder=self.text_encoder.text().strip() or None)


class _quiet:
    """Block the signals of some widgets while they are set up (restoring must not re-run queries)."""

    def __init__(self, *widgets):
        self.widgets = widgets

    def __enter__(self):
        self.was = [w.blockSignals(True) for w in self.widgets]

    def __exit__(self, *exc):
        for w, was in zip(self.widgets, self.was, strict=True):
            w.blockSignals(was)


class ModelPanel(InstallsModels, QFrame):
    """A banner naming a missing model, with download (size, progress, cancel, resume) or offline import; browsing
    goes on meanwhile. Every message wraps; the library's own text is under Details."""

    installed = Signal(str, str)  # role, model name

    WHY = {
        "encoder": "It is needed to index photos and to search them.",
        "reranker": "Without it, results are ranked by similarity only (nothing checks “same object?”).",
        "text-encoder": "It is needed to search by a description.",
    }

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("modelPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.role = self.name = None
        self.message = WrapLabel()
        self.download = QPushButton("Download")
        self.import_ = QPushButton("Import files…")
        self.cancel = QPushButton("Cancel")
        self.dismiss = QPushButton("Dismiss")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.detail = WrapLabel()
        self.detail.setObjectName("modelDetail")
        self.details = QPushButton("Details")
        self.details.setCheckable(True)
        self.details_text = WrapLabel()
        self.details_text.hide()
        buttons = QHBoxLayout()
        for b in (self.download, self.import_, self.cancel, self.dismiss, self.details):
            buttons.addWidget(b)
        buttons.addStretch()
        lay = QVBoxLayout(self)
        for w in (self.message,):
            lay.addWidget(w)
        lay.addLayout(buttons)
        lay.addWidget(self.bar)
        lay.addWidget(self.detail)
        lay.addWidget(self.details_text)
        self.download.clicked.connect(self.start_download)
        self.import_.clicked.connect(self._choose_import)
        self.cancel.clicked.connect(self._cancel)
        self.dismiss.clicked.connect(self.hide)
        self.details.toggled.connect(self.details_text.setVisible)
        self._busy(False)
        self._set_details("")
        self.hide()

    def show_missing(self, role: str, name: str, message: str) -> None:
        if self.worker is not None:
            return  # an install is already under way
        self.role, self.name = role, name
        try:
            info = models.get(name)
            what = f"“{name}” ({_size(info.size)}, {info.licence})"
            kept = models.partial_bytes(name)
            self.download.setText(f"Resume download ({_size(kept)} of {_size(info.size)} here)" if kept
                                  else f"Download {_size(info.size)}")
            self.download.setVisible(True)
        except EdgeretError:  # a path, not a registry model: nothing to download
            what = f"“{display(name)}”"
            self.download.setVisible(False)
        kind = PURPOSE.get(role, "model").split(":")[0].lower()
        self.message.setText(f"The {kind} {what} is not installed. {self.WHY.get(role, '')} Download it now, or "
                             "import the files copied from another computer. You can keep browsing meanwhile.")
        self.detail.setText("")
        self._set_details(message)
        self.show()

    def hide_for(self, role: str) -> None:
        """The user no longer needs this model (e.g. chose spatial verification): the banner goes."""
        if self.worker is None and self.role == role:
            self.hide()

    def _set_details(self, text: str) -> None:
        text = for_desktop(text) if text else ""  # the library's full text (with its CLI hints) is in the log
        self.details_text.setText(text)
        self.details.setVisible(bool(text))
        self.details.setChecked(False)

    def _busy(self, busy: bool) -> None:
        self.bar.setVisible(busy)
        self.cancel.setVisible(busy)
        for b in (self.download, self.import_, self.dismiss):
            b.setEnabled(not busy)

    def start_download(self) -> None:
        self._start(ModelWorker(name=self.name, parent=self))

    def _choose_import(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, f"Folder holding the files of {self.name}")
        if folder:
            self.import_from(folder)

    def import_from(self, path: str) -> None:
        self._start(ModelWorker(name=self.name if is_registry(self.name) else None, path=path, parent=self))

    def _start(self, worker: ModelWorker) -> None:
        self._set_details("")
        super()._start(worker)

    def _installed(self, name: str, folder: str) -> None:
        self.detail.setText(f"installed in {folder}")
        self.hide()
        self.installed.emit(self.role or "", name)

    def _failed(self, error) -> None:
        said = outcome(error, [self.name] if is_registry(self.name) else [])
        self.detail.setText(said.text)
        self._set_details(said.details)
        if said.resumable and is_registry(self.name):
            self.download.setText(f"Resume download ({_size(models.partial_bytes(self.name))} here)")
