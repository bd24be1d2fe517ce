"""Hand photos to the desktop: open one, reveal it in the file manager, copy paths; where dialogs open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QStandardPaths, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication

from edgeret.fsnames import display


def pictures_dir() -> str:
    """Where folder and file dialogs open: the user's Pictures folder, else their home."""
    for loc in (QStandardPaths.StandardLocation.PicturesLocation, QStandardPaths.StandardLocation.HomeLocation):
        for folder in QStandardPaths.standardLocations(loc):
            if Path(folder).is_dir():
                return folder
    return str(Path.home())


def open_path(path: str) -> str | None:
    """Open with the user's default viewer; None when it worked, else what went wrong (to show, not swallow)."""
    if not Path(path).is_file():
        return f"{display(path)} is not there any more (moved or deleted?)"
    if not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
        return f"No application on this system opens {Path(path).suffix or 'this kind of'} files ({display(path)})"
    return None


def reveal(path: str) -> str | None:
    """Show the file selected in the system file manager (its folder where selecting is not possible); None when
    that worked, else what went wrong."""
    if not Path(path).exists():
        return f"{display(path)} is not there any more (moved or deleted?)"
    try:
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", path])
            return None
        if sys.platform == "win32":
            subprocess.Popen(["explorer", f"/select,{path}"])
            return None
        # FreeDesktop file managers (Nautilus, Dolphin, Nemo...) select the file through this D-Bus call.
        uri = QUrl.fromLocalFile(path).toString()
        done = subprocess.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.FileManager1", "--type=method_call",
             "/org/freedesktop/FileManager1", "org.freedesktop.FileManager1.ShowItems", f"array:string:{uri}",
             "string:"], capture_output=True, timeout=3)
        if done.returncode == 0:
            return None
    except (OSError, subprocess.TimeoutExpired):
        pass  # no D-Bus or no file manager on it: open the folder instead
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent))):
        return None
    return f"No file manager could show {display(path)}"


def copy_path(path: str) -> None:
    """Put the path(s), one a line, on the clipboard as text. (Not as a QMimeData with file URLs: the clipboard
    taking ownership of a Python-made QMimeData crashes PySide6 at exit. Dragging out carries the files.)"""
    QGuiApplication.clipboard().setText(path)
