"""`edgeret gui`: open the desktop app on a library."""

from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from edgeret.settings import Settings

from . import syscheck
from .main_window import MainWindow


def run(settings: Settings, text_encoder: str | None = None) -> int:
    """Open the app on `settings` (from `edgeret gui`'s options, parsed by the CLI) until its window closes."""
    if (problem := syscheck.check()) is not None:  # Qt would abort naming one library and no package
        print(problem, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "edgeret"])
    app.setApplicationName("edgeret")
    # remembered search settings and window: ~/.config/edgeret/gui.ini
    prefs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "edgeret", "gui")
    window = MainWindow(settings, text_encoder=text_encoder, watch=True, prefs=prefs)
    window.show()
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    """`python -m gui.app [options]`: the same as `edgeret gui [options]` (one parser, the CLI's)."""
    from edgeret.cli import main as cli_main

    return cli_main(["gui", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
