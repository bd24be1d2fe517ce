"""The main window: wires panels, grids and workers together. Holds no retrieval logic, only calls."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from edgeret.errors import LibraryError
from edgeret.library import Library
from edgeret.settings import Settings
from edgeret.thumbnails import ThumbnailCache

from . import desktop
from .duplicates_view import DuplicatesView
from .grid import PhotoGrid
from .item_models import PhotoListModel, ResultListModel
from .panels import IndexPanel, ModelPanel, SettingsPanel
from .query_pane import QueryPane
from .thumbs import ThumbLoader
from .workers import IndexWorker, QueryWorker, Tasks

log = logging.getLogger(__name__)


def _read_library(path: Path, folder: str | None) -> dict:
    """What the library panes show, read on a task thread (an absent library reads as empty)."""
    try:
        lib = Library(path)
    except LibraryError:
        return {"roots": [], "photos": [], "failures": [], "indexed": 0}
    with lib:
        st = lib.status()
        return {"roots": st["roots"], "photos": lib.photos(folder), "indexed": st["indexed"],
                "failures": [(f["path"], f["reason"]) for f in st["failures"]]}


def _remove_root(path: Path, root: str) -> int:
    with Library(path, writable=True) as lib:
        return lib.remove_root(root)


class _WatchBridge(QObject):
    """Carries the watcher's callbacks (on its own thread) to the UI thread."""

    batch = Signal(int, int)  # file-system events, photos indexed
    error = Signal(str)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings, thumbnails: ThumbnailCache | None = None, text_encoder: str | None = None,
                 watch: bool = False, prefs: QSettings | None = None):
        """prefs: where the window and search settings are remembered between runs (None: nowhere)."""
        super().__init__()
        self.setWindowTitle("edgeret")
        self.setAcceptDrops(True)
        self.library_path = settings.library
        self.tasks = Tasks(self)
        self.thumbs = ThumbLoader(thumbnails or ThumbnailCache(), threads=2, parent=self)
        self.photo_model = PhotoListModel(self.thumbs, parent=self)
        self.result_model = ResultListModel(self.thumbs, parent=self)
        self.index_worker: IndexWorker | None = None
        self.query = QueryWorker(self.library_path, parent=self)
        self.gen = 0  # the query whose results are shown
        self.last_query: dict | None = None
        self.pending_roots: list[str] | None = None  # indexing waiting for the encoder to be installed
        self.settings = settings
        self.watcher = None
        self.watch_bridge = _WatchBridge(self)
        self._build(settings, text_encoder)
        self._wire()
        self.query.start()
        self.refresh_library()
        self.prefs = prefs
        if prefs is not None:
            self.settings_panel.restore_from(prefs)
            self.restoreGeometry(prefs.value("window/geometry", b""))
            watch = bool(prefs.value("window/watch", watch, type=bool))
        self.watch_box.setChecked(watch)

    # --- layout ------------------------------------------------------------------------------------------------
    def _build(self, settings: Settings, text_encoder: str | None = None) -> None:
        self.roots = QListWidget()
        self.roots.setMaximumHeight(110)
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_folder_button = QPushButton("Remove")
        self.reindex_button = QPushButton("Refresh")
        self.reindex_button.setToolTip("Index new or changed photos in every folder")
        row = QHBoxLayout()
        for b in (self.add_folder_button, self.remove_folder_button, self.reindex_button):
            row.addWidget(b)
        folders = QGroupBox("Folders")
        fl = QVBoxLayout(folders)
        fl.addWidget(self.roots)
        fl.addLayout(row)
        self.watch_box = QCheckBox("Keep in step with the folders (watch for changes)")
        fl.addWidget(self.watch_box)
        self.index_panel = IndexPanel()
        self.settings_panel = SettingsPanel(settings.threads, settings.encoder, text_encoder)
        side = QWidget()
        sl = QVBoxLayout(side)
        for w in (folders, self.index_panel, self.settings_panel):
            sl.addWidget(w)
        sl.addStretch()

        self.folder_filter = QComboBox()
        self.folder_filter.addItem("All folders", None)
        self.library_grid = PhotoGrid(n_lines=1)
        self.library_grid.setModel(self.photo_model)
        self.library_grid.setObjectName("libraryGrid")
        lib_tab = QWidget()
        ll = QVBoxLayout(lib_tab)
        fr = QHBoxLayout()
        fr.addWidget(QLabel("Show"))
        fr.addWidget(self.folder_filter, 1)
        ll.addLayout(fr)
        ll.addWidget(self.library_grid)

        self.query_pane = QueryPane()
        self.results_grid = PhotoGrid(n_lines=4)
        self.results_grid.setModel(self.result_model)
        self.results_grid.setObjectName("resultsGrid")
        res_tab = QWidget()
        rl = QVBoxLayout(res_tab)
        rl.addWidget(self.query_pane)
        rl.addWidget(self.results_grid, 1)

        self.tabs = QTabWidget()
        self.library_tab_index = self.tabs.addTab(lib_tab, "Library")
        self.results_tab_index = self.tabs.addTab(res_tab, "Results")
        self.duplicates = DuplicatesView(self.library_path, self.thumbs)
        self.duplicates_tab_index = self.tabs.addTab(self.duplicates, "Duplicates")
        self.model_panel = ModelPanel()
        main = QWidget()
        ml = QVBoxLayout(main)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.model_panel)
        ml.addWidget(self.tabs, 1)
        split = QSplitter()
        split.addWidget(side)
        split.addWidget(main)
        split.setStretchFactor(1, 1)
        self.setCentralWidget(split)
        self.resize(1200, 800)

        self.open_action = self._action("Choose query photo…", QKeySequence.StandardKey.Open,
                                        self.query_pane.choose_file)
        self.paste_action = self._action("Paste query", QKeySequence.StandardKey.Paste, self.paste)
        self.stop_action = self._action("Stop re-ranking", QKeySequence(Qt.Key.Key_Escape), self.stop)
        self.add_action = self._action("Add folder…", QKeySequence("Ctrl+Shift+A"), self.add_folder)

    def _action(self, text: str, key, slot) -> QAction:
        a = QAction(text, self)
        a.setShortcut(key)
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _wire(self) -> None:
        self.add_folder_button.clicked.connect(self.add_folder)
        self.remove_folder_button.clicked.connect(self.remove_selected_folder)
        self.reindex_button.clicked.connect(lambda: self.start_index([]))
        self.folder_filter.currentIndexChanged.connect(lambda _: self.refresh_library())
        self.index_panel.pause_toggled.connect(self._pause_index)
        self.index_panel.cancel_clicked.connect(self._cancel_index)
        self.query_pane.path_chosen.connect(self.query_path)
        self.query_pane.data_given.connect(self.query_data)
        self.query_pane.text_entered.connect(self.query_text)
        self.query_pane.paste_clicked.connect(self.paste)
        self.query_pane.stop_clicked.connect(self.stop)
        self.query_pane.box_changed.connect(self.query_box)
        for grid in (self.library_grid, self.results_grid, self.duplicates.grid):
            grid.find_requested.connect(self.query_photo)
            grid.open_requested.connect(desktop.open_path)
            grid.reveal_requested.connect(desktop.reveal)
            grid.copy_requested.connect(self.copy_path)
        self.query.query_image.connect(self._query_image)
        self.query.results.connect(self._results)
        self.query.status.connect(self._query_status)
        self.query.finished_query.connect(self._query_finished)
        self.query.failed.connect(self._query_failed)
        self.query.model_missing.connect(self.model_panel.show_missing)
        self.query.notice.connect(self._query_notice)
        self.model_panel.installed.connect(self._model_installed)
        self.watch_box.toggled.connect(self.set_watching)
        self.watch_bridge.batch.connect(self._watch_batch)
        self.watch_bridge.error.connect(self._error)

    # --- watching ----------------------------------------------------------------------------------------------
    def set_watching(self, on: bool) -> None:
        """Follow file-system changes in the library's folders (edgeret.watch), or stop following them.

        Not while the app's own indexing runs, and not before the library exists: then it starts after the run.
        """
        self._stop_watcher()
        if on and not self.index_running() and (self.library_path / "catalog.sqlite").is_file():
            from edgeret.watch import Watcher

            bridge = self.watch_bridge
            self.watcher = Watcher(
                self.library_path, encoder_spec=self.settings.encoder, threads=self.settings.threads,
                on_batch=lambda b: bridge.batch.emit(b.events, int(b.report.get("indexed", 0))),
                on_error=lambda e: bridge.error.emit(f"watching: {e}"),
            ).start()

    def _stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _watch_batch(self, events: int, indexed: int) -> None:
        self.statusBar().showMessage(f"folders changed ({events} events): {indexed} photos indexed", 5000)
        self.refresh_library()

    # --- library -----------------------------------------------------------------------------------------------
    def refresh_library(self) -> None:
        folder = self.folder_filter.currentData()
        self.tasks.run(lambda: _read_library(self.library_path, folder), self._library_read, self._error)

    def _library_read(self, info: dict) -> None:
        self.photo_model.set_photos(info["photos"])
        self.roots.clear()
        self.roots.addItems(info["roots"])
        current = self.folder_filter.currentData()
        self.folder_filter.blockSignals(True)
        self.folder_filter.clear()
        self.folder_filter.addItem("All folders", None)
        for r in info["roots"]:
            self.folder_filter.addItem(r, r)
        self.folder_filter.setCurrentIndex(max(0, self.folder_filter.findData(current)))
        self.folder_filter.blockSignals(False)
        if not self.index_running():
            self.index_panel.show_failures(info["failures"])
        self.statusBar().showMessage(
            f"{info['indexed']:,} photos · {len(info['failures'])} failed · library {self.library_path}")

    def add_folder(self, folder: str | None = None) -> None:
        folder = folder or QFileDialog.getExistingDirectory(self, "Add a photo folder")
        if folder:
            self.start_index([folder])

    def remove_selected_folder(self) -> None:
        item = self.roots.currentItem()
        if item is None:
            return
        if self.index_running():
            self.statusBar().showMessage("wait for indexing to finish (or cancel it) before removing a folder")
            return
        root = item.text()
        self.tasks.run(lambda: _remove_root(self.library_path, root), self._root_removed, self._error)

    def index_running(self) -> bool:
        return self.index_worker is not None and self.index_worker.isRunning()

    def start_index(self, roots: list[str]) -> None:
        if self.index_running():
            self.statusBar().showMessage("already indexing; wait or cancel first")
            return
        s = self.settings_panel.settings()
        self._stop_watcher()  # one writer at a time: the watcher resumes, following any new folder, after the run
        w = self.index_worker = IndexWorker(self.library_path, roots, s.encoder, s.threads, parent=self)
        w.progress.connect(self.index_panel.on_progress)
        w.report.connect(self._index_report)
        w.failed.connect(self._index_failed)
        w.model_missing.connect(lambda role, name, msg: self._index_needs_model(roots, role, name, msg))
        w.finished.connect(self._index_thread_done)
        self.index_panel.set_running(True)
        w.start()

    def _pause_index(self, paused: bool) -> None:
        if self.index_worker is not None:
            self.index_worker.set_paused(paused)

    def _cancel_index(self) -> None:
        if self.index_worker is not None:
            self.index_worker.cancel()

    def _index_failed(self, message: str) -> None:
        self.index_panel.finish(f"failed: {message}")
        self._error(message)

    def _root_removed(self, n: int) -> None:
        self.statusBar().showMessage(f"removed a folder ({n} photos)")
        self.refresh_library()

    def _index_thread_done(self) -> None:
        if self.index_worker is not None:
            self.index_worker.deleteLater()
        self.index_worker = None
        self.set_watching(self.watch_box.isChecked())

    def _index_report(self, report) -> None:
        state = "cancelled" if report.cancelled else "done"
        self.index_panel.finish(f"{state} in {report.seconds:.1f}s: {report.indexed} indexed, {report.unchanged} "
                                f"unchanged, {report.moved} moved, {report.removed} removed, {len(report.failed)} "
                                "failed")
        self.index_panel.show_failures(report.failed)
        self.refresh_library()

    def _index_needs_model(self, roots: list[str], role: str, name: str, message: str) -> None:
        self.pending_roots = roots
        self.index_panel.finish("waiting for the image encoder")
        self.model_panel.show_missing(role, name, message)

    def _model_installed(self, role: str, name: str) -> None:
        self.settings_panel.refresh_models()
        self.statusBar().showMessage(f"{name} installed")
        if role == "encoder" and self.pending_roots is not None:
            roots, self.pending_roots = self.pending_roots, None
            self.start_index(roots)
        elif self.last_query is not None:
            self._submit(**self.last_query)

    # --- queries -----------------------------------------------------------------------------------------------
    def query_path(self, path: str) -> None:
        self._submit(source=path, path=path)

    def query_data(self, data: bytes) -> None:
        self._submit(source="pasted image", data=data)

    def query_photo(self, key: int, path: str) -> None:
        self._submit(source=path, path=path, key=key)

    def query_text(self, text: str) -> None:
        self._submit(source=f"“{text}”", text=text)

    def query_box(self, box) -> None:
        """The box on the query photo changed: search the same photo again, boxed (or whole with None)."""
        if self.last_query is not None and self.last_query.get("text") is None:
            job = {k: v for k, v in self.last_query.items() if k != "box"}
            self._submit(**job, box=box)

    def _submit(self, source: str, **job) -> None:
        if job.get("box") is None:
            self.query_pane.reset_box()  # a new query starts unboxed, ready to be boxed
        self.last_query = {"source": source, **job}
        self.gen = self.query.submit(self.settings_panel.settings(), **job)
        self.result_model.clear()
        self.query_pane.started(source)
        if job.get("text") is not None:
            self.query_pane.show_text_query()
        self.tabs.setCurrentIndex(self.results_tab_index)

    def paste(self) -> None:
        if not self.query_pane.accept_mime(QGuiApplication.clipboard().mimeData()):
            self.statusBar().showMessage("the clipboard holds no image")

    def stop(self) -> None:
        if self.query_pane.stop.isEnabled():
            self.query.stop()  # the worker answers with finished_query(gen, "stopped")
            self.query_pane.status.setText("stopping…")

    def _query_status(self, gen: int, text: str) -> None:
        if gen == self.gen:
            self.query_pane.status.setText(text)

    def _query_notice(self, gen: int, text: str) -> None:
        if gen == self.gen:
            self.statusBar().showMessage(text)

    def _query_image(self, gen: int, image, size=None) -> None:
        if gen == self.gen:
            self.query_pane.show_image(image, size)

    def _results(self, gen: int, results: list, judged: int, total: int) -> None:
        if gen != self.gen:
            return
        self.result_model.set_results(results)
        self.query_pane.progress(judged, total)
        if total:
            self.query_pane.status.setText(f"re-ranking: {judged} of {total} judged (Esc stops)")
        if self.results_grid.currentIndex().row() < 0 and results:
            self.results_grid.setCurrentIndex(self.result_model.index(0))

    def _query_finished(self, gen: int, state: str) -> None:
        if gen != self.gen:
            return
        n = self.result_model.rowCount()
        text = {"first stage": f"{n} results (first stage only)", "re-ranked": f"{n} results, re-ranked",
                "stopped": "stopped: the results so far stay"}[state]
        self.query_pane.finished(text)

    def _query_failed(self, gen: int, message: str) -> None:
        if gen == self.gen:
            self.query_pane.finished(f"error: {message}")
            self.statusBar().showMessage(message)

    # --- misc --------------------------------------------------------------------------------------------------
    def copy_path(self, path: str) -> None:
        desktop.copy_path(path)
        self.statusBar().showMessage(f"copied {path}")

    def _error(self, message: str) -> None:
        self.statusBar().showMessage(message)

    def dragEnterEvent(self, event) -> None:
        self.query_pane.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        self.query_pane.dropEvent(event)

    def closeEvent(self, event) -> None:
        if self.prefs is not None:
            self.settings_panel.save_to(self.prefs)
            self.prefs.setValue("window/geometry", self.saveGeometry())
            self.prefs.setValue("window/watch", self.watch_box.isChecked())
            self.prefs.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every worker cleanly (the re-ranker is closed on its own thread)."""
        self._stop_watcher()
        if self.index_running():
            self.index_worker.cancel()
            self.index_worker.wait(30_000)
        self.model_panel.shutdown()
        self.duplicates.shutdown()
        self.query.shutdown()
        self.thumbs.shutdown()
        self.tasks.wait()
