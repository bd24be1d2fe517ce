"""The menu bar: File, Edit, View, Help, with the desktop's standard shortcuts. Actions call the window's methods."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

KEYS = QKeySequence.StandardKey


def _action(w, menu, text: str, slot, key=None, tip: str = "", context=Qt.ShortcutContext.WindowShortcut) -> QAction:
    a = QAction(text, w)
    if key is not None:
        a.setShortcut(key if isinstance(key, QKeySequence) else QKeySequence(key))
        a.setShortcutContext(context)
    if tip:
        a.setStatusTip(tip)
    a.triggered.connect(lambda _checked=False: slot())
    menu.addAction(a)
    w.addAction(a)  # shortcuts work while the menu bar is hidden too
    return a


def build_menus(w) -> dict[str, QAction]:
    """Fill w.menuBar(); returns the actions by name (the tests trigger them as a user would)."""
    bar = w.menuBar()
    acts: dict[str, QAction] = {}
    file = bar.addMenu("&File")
    acts["add_folder"] = _action(w, file, "&Add photo folder…", w.add_folder, "Ctrl+Shift+A")
    acts["open_query"] = _action(w, file, "&Open query photo…", w.query_pane.choose_file, KEYS.Open)
    file.addSeparator()
    acts["export"] = _action(w, file, "&Export results…", w.result_actions.export, "Ctrl+E",
                             "Save the results with their verdicts and scores as CSV or JSON")
    acts["copy_to"] = _action(w, file, "&Copy selected photos to folder…", lambda: w.result_actions.copy_to(move=False))
    acts["move_to"] = _action(w, file, "&Move selected photos to folder…", lambda: w.result_actions.copy_to(move=True))
    file.addSeparator()
    acts["preferences"] = _action(w, file, "&Preferences…", w.show_preferences, KEYS.Preferences
                                  if not QKeySequence(KEYS.Preferences).isEmpty() else "Ctrl+,")
    file.addSeparator()
    acts["quit"] = _action(w, file, "&Quit", w.close, "Ctrl+Q", context=Qt.ShortcutContext.ApplicationShortcut)

    edit = bar.addMenu("&Edit")
    acts["paste"] = _action(w, edit, "&Paste photo as query", w.paste, KEYS.Paste)
    # text boxes keep Ctrl+C / Ctrl+A / Ctrl+V for themselves (they claim these keys before window shortcuts)
    acts["copy"] = _action(w, edit, "&Copy paths of selected photos", w.result_actions.copy_paths, KEYS.Copy)
    acts["select_all"] = _action(w, edit, "Select &all", w.result_actions.select_all, KEYS.SelectAll)
    acts["select_matches"] = _action(w, edit, "Select all &matches", w.result_actions.select_matches, "Ctrl+M",
                                     "Select every result the re-ranker calls Same object")
    edit.addSeparator()
    acts["stop"] = _action(w, edit, "&Stop checking", w.stop, Qt.Key.Key_Escape)

    view = bar.addMenu("&View")
    acts["library"] = _action(w, view, "&Library", lambda: w.tabs.setCurrentIndex(w.library_tab_index), "Ctrl+1")
    acts["results"] = _action(w, view, "&Results", lambda: w.tabs.setCurrentIndex(w.results_tab_index), "Ctrl+2")
    acts["duplicates"] = _action(w, view, "&Duplicates", lambda: w.tabs.setCurrentIndex(w.duplicates_tab_index),
                                 "Ctrl+3")
    view.addSeparator()
    acts["preview"] = _action(w, view, "Full-window &preview", w.toggle_preview, Qt.Key.Key_Space,
                              context=Qt.ShortcutContext.WidgetShortcut)
    acts["fit"] = _action(w, view, "&Fit photos", lambda: w.compare.view.fit(), "Ctrl+0")
    acts["actual"] = _action(w, view, "Actual size (&1:1)", lambda: w.compare.view.actual_size(), "Ctrl+Alt+1")
    acts["zoom_in"] = _action(w, view, "Zoom &in", lambda: w.compare.view.zoom(1.25), KEYS.ZoomIn)
    acts["zoom_out"] = _action(w, view, "Zoom &out", lambda: w.compare.view.zoom(0.8), KEYS.ZoomOut)
    view.addSeparator()
    acts["side_panel"] = _action(w, view, "&Side panel", lambda: w.side.setVisible(not w.side.isVisible()), "F9")

    help_ = bar.addMenu("&Help")
    acts["getting_started"] = _action(w, help_, "&Getting started", w.show_welcome, KEYS.HelpContents)
    acts["log"] = _action(w, help_, "Show &log", w.show_log)
    acts["about"] = _action(w, help_, "&About edgeret", w.show_about)
    return acts
