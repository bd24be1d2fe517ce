"""First start: what edgeret does and the next step — get the models (one click: size, progress, cancel, resume;
or import files copied from another computer; or an encoder folder), add photo folders (remembered while the
encoder is missing, indexed when it arrives), then search. Nothing here asks for a terminal."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from edgeret import models
from edgeret.errors import EdgeretError
from edgeret.fsnames import display

from .downloads import PURPOSE, default_names, is_installed, outcome, size_of
from .messages import MessageBar, WrapLabel
from .wording import size
from .workers import InstallsModels, ModelWorker

INTRO = ("edgeret looks through your photo folders and finds the photos that show the same thing as a photo you "
         "give it — the same mug, the same bike, the same building — not merely similar ones. It runs on this "
         "computer: nothing is uploaded, and your photos are never changed.")
SEARCH_HINT = ("Drop a photo on the Results tab, paste one (Ctrl+V), choose one (Ctrl+O), or right-click any photo "
               "in the library → Find this object. Each result then says Same object, Maybe or Different.")


class WelcomePage(InstallsModels, QScrollArea):
    """Emits add_folder / choose_encoder; installs models itself and reports each with installed(role, name)."""

    add_folder = Signal()
    choose_encoder = Signal()
    installed = Signal(str, str)  # role, model name

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("welcome")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._names: list[str] = []
        self.names = default_names()
        outer = QWidget()
        self.setWidget(outer)
        centre = QHBoxLayout(outer)  # a readable column, centred on wide screens
        body = QWidget()
        body.setMaximumWidth(920)
        centre.addWidget(body, 1)
        lay = QVBoxLayout(body)
        lay.setContentsMargins(24, 16, 24, 16)
        title = QLabel("Find the same object across your photos")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        lay.addWidget(title)
        lay.addWidget(WrapLabel(INTRO))
        lay.addWidget(self._models_box())
        lay.addWidget(self._folders_box())
        search = QGroupBox("3 · Search")
        QVBoxLayout(search).addWidget(WrapLabel(SEARCH_HINT))
        lay.addWidget(search)
        lay.addStretch()
        self.refresh_models()

    def _models_box(self) -> QGroupBox:
        box = QGroupBox("1 · Get the models")
        self.model_list = WrapLabel("")
        self.model_list.setObjectName("welcomeModels")
        self.download = QPushButton("Download models")
        self.download.setObjectName("welcomeDownload")
        self.cancel = QPushButton("Cancel")
        self.import_ = QPushButton("Import files…")
        self.import_.setToolTip("Install models from files copied from another computer (no network needed)")
        self.encoder_button = QPushButton("Use an encoder folder…")
        self.encoder_button.setToolTip("An image encoder you already have: a folder with model.onnx and "
                                       "preprocess.json")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.detail = WrapLabel("")  # the install's progress, then what became of it
        self.message = MessageBar()
        row = QHBoxLayout()
        for b in (self.download, self.cancel, self.import_, self.encoder_button):
            row.addWidget(b)
        row.addStretch()
        lay = QVBoxLayout(box)
        lay.addWidget(self.model_list)
        lay.addLayout(row)
        lay.addWidget(self.bar)
        lay.addWidget(self.detail)
        lay.addWidget(self.message)
        self.download.clicked.connect(self.start_download)
        self.cancel.clicked.connect(self._cancel)
        self.import_.clicked.connect(self._choose_import)
        self.encoder_button.clicked.connect(self.choose_encoder)
        self._busy(False)
        return box

    def _folders_box(self) -> QGroupBox:
        box = QGroupBox("2 · Add your photo folders")
        self.folders_text = WrapLabel("")
        self.add_button = QPushButton("Add a photo folder…")
        self.add_button.setObjectName("welcomeAddFolder")
        self.folders = QListWidget()
        self.folders.setMaximumHeight(90)
        self.folders.hide()
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addStretch()
        lay = QVBoxLayout(box)
        lay.addWidget(self.folders_text)
        lay.addLayout(row)
        lay.addWidget(self.folders)
        self.add_button.clicked.connect(self.add_folder)
        self.set_folders([], encoder_ready=False)
        return box

    # state shown ------------------------------------------------------------------------------------------------
    def missing(self) -> list[str]:
        return [n for n in self.names if not is_installed(n) and size_of(n)]

    def refresh_models(self) -> None:
        self.names = default_names()  # the registry can change under a running app (EDGERET_REGISTRY)
        lines = []
        for name in self.names:
            try:
                info = models.get(name)
            except EdgeretError:
                continue
            state = "✓ installed" if info.installed() else f"{size(info.size)}, not installed"
            kept = models.partial_bytes(name)
            if kept and not info.installed():
                state += f" ({size(kept)} already downloaded)"
            lines.append(f"• {PURPOSE.get(info.role, info.role)} — {name}, {info.licence}: {state}")
        self.model_list.setText("\n".join(lines) or "The model registry lists no default models.")
        todo = self.missing()
        total = sum(size_of(n) for n in todo)
        kept = sum(models.partial_bytes(n) for n in todo)
        self.download.setText(("Resume download" if kept else "Download models") + f" ({size(total)})" if todo
                              else "All models installed")
        self.download.setEnabled(bool(todo) and self.worker is None)

    def set_folders(self, folders: list[str], encoder_ready: bool) -> None:
        self.folders.clear()
        self.folders.addItems([display(f) for f in folders])
        self.folders.setVisible(bool(folders))
        if not folders:
            text = "Choose the folders that hold your photos (they open in your Pictures folder)."
        elif encoder_ready:
            text = "Indexing these folders: the library fills in as photos are read."
        else:
            text = ("These folders are remembered. Indexing starts by itself as soon as the image encoder is "
                    "installed (step 1).")
        self.folders_text.setText(text)

    # installing -------------------------------------------------------------------------------------------------
    def _busy(self, busy: bool) -> None:
        self.bar.setVisible(busy)
        self.cancel.setVisible(busy)
        for b in (self.import_, self.encoder_button):
            b.setEnabled(not busy)
        self.download.setEnabled(not busy and bool(self.missing()))

    def start_download(self) -> None:
        todo = self.missing()
        if todo:
            self._install(ModelWorker(names=todo, parent=self), todo)

    def _choose_import(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder holding the model files copied from another computer")
        if folder:
            self.import_from(folder)

    def import_from(self, folder: str) -> None:
        self._install(ModelWorker(path=folder, parent=self), self.missing())

    def _install(self, worker: ModelWorker, names: list[str]) -> None:
        self._names = names
        self.message.hide()
        super()._start(worker)

    def _installed(self, name: str, folder: str) -> None:
        self.detail.setText(f"{name} installed")
        role = models.get(name).role if is_installed(name) else ""
        self.installed.emit(role, name)

    def _failed(self, error) -> None:
        said = outcome(error, self._names)
        self.detail.setText("")
        self.message.show_message(said.text, "warning" if said.resumable else "error", said.details)

    def _finished(self) -> None:
        super()._finished()
        self.refresh_models()

