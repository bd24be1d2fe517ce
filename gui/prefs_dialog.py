"""Preferences (File → Preferences…, Ctrl+,): the developer knobs kept out of the main window — λ, threads, the
re-ranker model or GGUF files, the text encoder, the verdict thresholds, and the image encoder of a new library."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from .messages import WrapLabel
from .panels import SettingsPanel


class PreferencesDialog(QDialog):
    """Lays out the SettingsPanel's preference widgets; changes apply at once (the next query uses them)."""

    encoder_chosen = Signal(str)  # an encoder folder for a new library

    def __init__(self, panel: SettingsPanel, encoder: str | None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.panel = panel
        search = QGroupBox("Ranking")
        f = QFormLayout(search)
        f.addRow("λ (weight of similarity)", panel.lam)
        f.addRow(WrapLabel("Combined score = λ · similarity + (1 − λ) · P(same object). 0.5 weighs both equally."))
        model_row = QHBoxLayout()
        model_row.addWidget(panel.model, 1)
        model_row.addWidget(panel.custom)
        f.addRow("Multimodal LLM", model_row)
        f.addRow("CPU threads", panel.threads)
        f.addRow(panel.sv_preview)

        verdicts = QGroupBox("Verdicts")
        v = QFormLayout(verdicts)
        v.addRow("“Same object” from P(same) ≥", panel.same_at)
        v.addRow("“Different” below P(same) <", panel.different_below)
        v.addRow(WrapLabel("Defaults 0.8 and 0.2: on the test photos, 93% of what is called Same object is the same "
                           "object, and only 1.4% of true matches are called Different (docs/evaluation.md)."))

        models_box = QGroupBox("Models")
        m = QFormLayout(models_box)
        self.encoder = QLineEdit(encoder or "")
        self.encoder.setPlaceholderText("clip-vit-b32 (the default)")
        self.encoder.setReadOnly(True)
        browse = QPushButton("Choose folder…")
        browse.clicked.connect(self.choose_encoder)
        row = QHBoxLayout()
        row.addWidget(self.encoder, 1)
        row.addWidget(browse)
        m.addRow("Image encoder (new library)", row)
        m.addRow(WrapLabel("A folder holding model.onnx and preprocess.json. A library keeps the encoder it was "
                           "built with."))
        m.addRow("Text encoder", panel.text_encoder)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        for w in (search, verdicts, models_box):
            lay.addWidget(w)
        lay.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def choose_encoder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Image encoder folder (model.onnx + preprocess.json)")
        if folder:
            self.set_encoder(folder)

    def set_encoder(self, folder: str) -> None:
        if not (Path(folder) / "model.onnx").is_file():
            self.encoder.setText("")
            self.encoder.setPlaceholderText(f"{Path(folder).name} holds no model.onnx")
            return
        self.encoder.setText(folder)
        self.encoder_chosen.emit(folder)
