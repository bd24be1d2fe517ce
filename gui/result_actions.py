"""Acting on results: select all / all matches, copy paths, copy or move to a folder, export with scores, open and
reveal with errors shown. The file work runs through edgeret.export on a task thread."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel
from PySide6.QtWidgets import QFileDialog, QMessageBox

from edgeret.export import copy_photos, export_results
from edgeret.verdicts import Verdict

from . import desktop


class ResultActions:
    """Bound to a MainWindow; each method is one menu item or context-menu entry."""

    def __init__(self, window):
        self.w = window

    def grid(self):
        """The grid the user is working in: the focused one, else the results."""
        for g in (self.w.library_grid, self.w.results_grid, self.w.duplicates.grid):
            if g.hasFocus():
                return g
        return self.w.library_grid if self.w.tabs.currentIndex() == self.w.library_tab_index else self.w.results_grid

    def select_all(self) -> None:
        g = self.grid()
        g.setFocus()
        g.selectAll()

    def select_matches(self) -> None:
        """Select every result called Same object (nothing when no re-ranker has judged)."""
        model, grid = self.w.result_model, self.w.results_grid
        rows = [r for r in range(model.rowCount()) if model.verdict(r) is Verdict.SAME]
        selection = QItemSelection()
        for r in rows:
            selection.select(model.index(r), model.index(r))
        grid.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.w.tabs.setCurrentIndex(self.w.results_tab_index)
        self.w.say(f"{len(rows)} matches selected" if rows else "no result is called Same object")

    def copy_paths(self) -> None:
        paths = self.grid().selected_paths()
        if paths:
            self.w.copy_path("\n".join(paths))

    def copy_to(self, move: bool = False, folder: str | None = None, confirm: bool = True) -> None:
        """Copy (or move) the selected photos into a folder the user picks; never overwrites."""
        paths = self.grid().selected_paths()
        if not paths:
            self.w.say("select photos first (Ctrl+A selects all, Ctrl+M all matches)")
            return
        verb = "Move" if move else "Copy"
        folder = folder or QFileDialog.getExistingDirectory(self.w, f"{verb} {len(paths)} photos to…",
                                                            desktop.pictures_dir())
        if not folder:
            return
        if move and confirm and QMessageBox.question(
                self.w, "Move photos", f"Move {len(paths)} photos out of their folders into {folder}?\n\n"
                "They leave the library's folders (the library forgets them at the next refresh).") != \
                QMessageBox.StandardButton.Yes:
            return
        self.w.say(f"{'moving' if move else 'copying'} {len(paths)} photos…")
        self.w.tasks.run(lambda: copy_photos(paths, folder, move=move), lambda done: self._copied(done, folder, move),
                         self.w.error)

    def _copied(self, done: list, folder: str, move: bool) -> None:
        self.w.say(f"{'moved' if move else 'copied'} {len(done)} photos to {folder}")
        self.last_copied = done
        if move:
            self.w.start_index([])  # the library catches up with the photos that left

    def export(self, path: str | None = None) -> None:
        """Save the current results with verdicts and scores (CSV or JSON, by the file's extension)."""
        model = self.w.result_model
        if model.rowCount() == 0:
            self.w.say("nothing to export: run a search first")
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.w, "Export results", str(Path(desktop.pictures_dir()) /
                                                  "edgeret-results.csv"), "CSV (*.csv);;JSON (*.json)")
        if not path:
            return
        if Path(path).suffix.lower() not in (".csv", ".json"):
            path += ".csv"
        query = (self.w.last_query or {}).get("source")
        try:
            export_results(model.results, path, query=query, reranker=model.reranker, thresholds=model.thresholds)
        except (OSError, ValueError) as e:
            self.w.error(f"could not export to {path}: {e}")
            return
        self.w.say(f"exported {model.rowCount()} results to {path}")

    def open(self, path: str) -> None:
        problem = desktop.open_path(path)
        if problem:
            self.w.error(problem)

    def reveal(self, path: str) -> None:
        problem = desktop.reveal(path)  # at most a 3 s D-Bus call
        if problem:
            self.w.error(problem)
