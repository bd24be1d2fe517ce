"""Help → About: what edgeret is, the versions of its parts, and the licences of the models it uses."""

from __future__ import annotations

import platform
from importlib import metadata

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

from edgeret import models
from edgeret.errors import EdgeretError

PARTS = ("edgeret", "PySide6-Essentials", "onnxruntime", "usearch", "llama_cpp_python", "opencv-python-headless",
         "pillow", "numpy")


def versions() -> list[tuple[str, str]]:
    found = [("Python", platform.python_version())]
    for dist in PARTS:
        try:
            found.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            found.append((dist, "not installed"))
    return found


def model_licences() -> list[tuple[str, str, str, bool]]:
    """(name, role, licence, installed) for each registry model, defaults first."""
    try:
        entries = models.list_models()
    except EdgeretError:
        return []
    entries.sort(key=lambda m: (not m["default"], not m["installed"], m["name"]))
    return [(m["name"], m["role"], m["licence"], m["installed"]) for m in entries]


def about_html() -> str:
    rows = "".join(f"<tr><td>{n}</td><td>{v}</td></tr>" for n, v in versions())
    lic = "".join(f"<tr><td>{n}</td><td>{r}</td><td>{licence}</td><td>{'installed' if i else ''}</td></tr>"
                  for n, r, licence, i in model_licences())
    return ("<h2>edgeret</h2><p>Finds the same object across your photo library, offline, on this computer. "
            "Nothing leaves your machine, and your photo folders are never written to.</p>"
            f"<h3>Versions</h3><table cellspacing=4>{rows}</table>"
            "<h3>Models and their licences</h3><p>Each model is used under its own licence, shown here as "
            "its publisher states it.</p>"
            f"<table cellspacing=4><tr><th align=left>model</th><th align=left>role</th><th align=left>licence</th>"
            f"<th></th></tr>{lic}</table>"
            "<p>edgeret itself is MIT-licensed.</p>")


class AboutDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("About edgeret")
        self.text = QTextBrowser()
        self.text.setHtml(about_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addWidget(buttons)
        self.resize(560, 560)
