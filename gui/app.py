"""`edgeret gui`: open the desktop app on a library."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from edgeret.settings import load_settings

from . import syscheck
from .main_window import MainWindow


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edgeret gui", description="Browse and search your photos.")
    p.add_argument("--library", type=Path, help="library folder (default: user data dir; env EDGERET_LIBRARY)")
    p.add_argument("--encoder", help="encoder for a new library: a registry name or a model folder")
    p.add_argument("--text-encoder", help="text tower for text search: a registry name or a model folder")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if (problem := syscheck.check()) is not None:  # Qt would abort naming one library and no package
        print(problem, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = load_settings(library=args.library, encoder=args.encoder, threads=args.threads)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "edgeret"])
    app.setApplicationName("edgeret")
    # remembered search settings and window: ~/.config/edgeret/gui.ini
    prefs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "edgeret", "gui")
    window = MainWindow(settings, text_encoder=args.text_encoder, watch=True, prefs=prefs)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
