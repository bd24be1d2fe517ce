"""Hand a photo to the desktop: open it, reveal it in the file manager, copy its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication


def open_path(path: str) -> bool:
    """Open with the user's default viewer."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def reveal(path: str) -> None:
    """Show the file selected in the system file manager (its folder where selecting is not possible)."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif sys.platform == "win32":
        subprocess.Popen(["explorer", f"/select,{path}"])
    else:
        # FreeDesktop file managers (Nautilus, Dolphin, Nemo...) select the file through this D-Bus call.
        uri = QUrl.fromLocalFile(path).toString()
        try:
            subprocess.Popen(
                ["dbus-send", "--session", "--dest=org.freedesktop.FileManager1", "--type=method_call",
                 "/org/freedesktop/FileManager1", "org.freedesktop.FileManager1.ShowItems",
                 f"array:string:{uri}", "string:"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        except OSError:  # no D-Bus: open the folder instead
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


def copy_path(path: str) -> None:
    QGuiApplication.clipboard().setText(path)
