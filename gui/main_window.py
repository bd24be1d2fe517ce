"""The main window: wires panels, grids and workers together. Holds no retrieval logic, only calls."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from edgeret.errors import EdgeretError, LibraryError
from edgeret.fsnames import display
from edgeret.library import Library
from edgeret.settings import DEFAULT_ENCODER, Settings
from edgeret.thumbnails import ThumbnailCache
from edgeret.verdicts import Verdict, matches_end

from . import desktop
from .about import AboutDialog
from .duplicates_view import DuplicatesView
from .grid import PhotoGrid
from .item_models import PhotoListModel, ResultListModel
from .menus import build_menus
from .messages import LogBook, LogDialog, MessageBar, StatusLine
from .panels import IndexPanel, ModelPanel, SettingsPanel
from .prefs_dialog import PreferencesDialog
from .prepare_worker import PrepareWorker
from .result_actions import ResultActions
from .results_tab import PreviewPage, ResultsTab
from .thumbs import ThumbLoader
from .welcome import WelcomePage
from .wording import for_desktop
from .workers import IndexWorker, QueryWorker, Tasks

log = logging.getLogger(__name__)


def _read_library(path: Path, folder: str | None, encoder: str | None, text_encoder: str | None) -> dict:
    """What the library panes show, read on a task thread (an absent library reads as empty)."""
    from edgeret.models import resolve
    from edgeret.text import text_search_status

    info = {"roots": [], "photos": [], "failures": [], "indexed": 0, "text": (False, "", None)}
    spec = encoder or DEFAULT_ENCODER
    try:
        lib = Library(path)
    except LibraryError:
        lib = None
    if lib is not None:
        with lib:
            st = lib.status()
            spec = encoder or lib.encoder_spec or DEFAULT_ENCODER
            info |= {"roots": st["roots"], "photos": lib.photos(folder), "indexed": st["indexed"],
                     "failures": [(f["path"], f["reason"]) for f in st["failures"]],
                     "text": text_search_status(lib, text_encoder)}
    try:
        resolve(spec, "encoder")
        info["encoder_ready"] = True
    except EdgeretError:
        info["encoder_ready"] = False
    info["encoder"] = spec
    return info


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
        self.log_book = LogBook(self)
        self.tasks = Tasks(self)
        self.thumbs = ThumbLoader(thumbnails or ThumbnailCache(), threads=2, parent=self)
        self.photo_model = PhotoListModel(self.thumbs, parent=self)
        self.result_model = ResultListModel(self.thumbs, parent=self)
        self.index_worker: IndexWorker | None = None
        self.query = QueryWorker(self.library_path, parent=self)
        self.gen = 0  # the query whose results are shown
        self.last_query: dict | None = None
        self.library_info: dict = {}
        self.settings = settings
        self.watcher = None
        self.watch_bridge = _WatchBridge(self)
        self._auto_indexed = False
        self.result_actions = ResultActions(self)
        self.prefs = prefs
        if prefs is not None and prefs.value("models/encoder") and settings.encoder is None:
            self.settings = settings = replace(settings, encoder=str(prefs.value("models/encoder")))
        self._build(settings, text_encoder)
        self.menu_actions = build_menus(self)
        self._wire()
        self.query.start()
        if prefs is not None:
            self.settings_panel.restore_from(prefs)
            self.restoreGeometry(prefs.value("window/geometry", b""))
            watch = bool(prefs.value("window/watch", watch, type=bool))
        self.watch_box.setChecked(watch)
        self.refresh_library()

    # --- layout ------------------------------------------------------------------------------------------------
    def _build(self, settings: Settings, text_encoder: str | None = None) -> None:
        self.side = self._side_panel(settings, text_encoder)
        self.library_grid = PhotoGrid(n_lines=2, selection_actions=True)
        self.library_grid.setModel(self.photo_model)
        self.library_grid.setObjectName("libraryGrid")
        self.welcome = WelcomePage()
        self.library_stack = QStackedWidget()
        self.library_stack.addWidget(self.welcome)
        self.library_stack.addWidget(self._library_page())

        self.results = ResultsTab(self.result_model)
        self.query_pane, self.results_grid, self.compare = self.results.query_pane, self.results.grid, \
            self.results.compare
        self.tabs = QTabWidget()
        self.library_tab_index = self.tabs.addTab(self.library_stack, "Library")
        self.results_tab_index = self.tabs.addTab(self.results, "Results")
        self.duplicates = DuplicatesView(self.library_path, self.thumbs)
        self.duplicates_tab_index = self.tabs.addTab(self.duplicates, "Duplicates")
        self.duplicates.library_changed.connect(self.refresh_library)
        self.model_panel = ModelPanel()
        self.message = MessageBar()
        main = QWidget()
        ml = QVBoxLayout(main)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.message)
        ml.addWidget(self.model_panel)
        ml.addWidget(self.tabs, 1)
        self.split = QSplitter()
        self.split.addWidget(self.side)
        self.split.addWidget(main)
        self.split.setStretchFactor(1, 1)
        self.split.setCollapsible(1, False)
        self.preview_page = PreviewPage()
        self.central = QStackedWidget()
        self.central.addWidget(self.split)
        self.central.addWidget(self.preview_page)
        self.setCentralWidget(self.central)
        self.status_line = StatusLine()
        self.statusBar().addWidget(self.status_line, 1)
        self.prepare = PrepareWorker(self.library_path, self)
        self.statusBar().addPermanentWidget(self.prepare.widget)
        self.preferences = PreferencesDialog(self.settings_panel, settings.encoder, self)
        self._initial_size()

    def _side_panel(self, settings: Settings, text_encoder: str | None) -> QScrollArea:
        self.roots = QListWidget()
        self.roots.setMaximumHeight(100)
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
        self.watch_box = QCheckBox("Follow changes in the folders")
        self.watch_box.setToolTip("New, moved and deleted photos show up by themselves while the app is open")
        fl.addWidget(self.watch_box)
        self.index_panel = IndexPanel()
        self.settings_panel = SettingsPanel(settings.threads, settings.encoder, text_encoder)
        body = QWidget()
        sl = QVBoxLayout(body)
        for w in (folders, self.index_panel, self.settings_panel):
            w.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # the stretch takes the rest
            sl.addWidget(w)
        sl.addStretch(1)
        side = QScrollArea()
        side.setWidget(body)
        side.setWidgetResizable(True)
        side.setFrameShape(QFrame.Shape.NoFrame)
        side.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side.setMinimumWidth(230)
        side.setMaximumWidth(380)
        return side

    def _library_page(self) -> QWidget:
        self.folder_filter = QComboBox()
        self.folder_filter.addItem("All folders", None)
        page = QWidget()
        ll = QVBoxLayout(page)
        fr = QHBoxLayout()
        fr.addWidget(QLabel("Show"))
        fr.addWidget(self.folder_filter, 1)
        ll.addLayout(fr)
        ll.addWidget(self.library_grid)
        return page

    def _initial_size(self) -> None:
        """1280×800 where it fits, else most of the screen; never larger than the screen."""
        screen = (self.screen() or QGuiApplication.primaryScreen()).availableGeometry()
        self.resize(min(1280, int(screen.width() * 0.95)), min(800, int(screen.height() * 0.92)))

    def _wire(self) -> None:
        self.add_folder_button.clicked.connect(self.add_folder)
        self.remove_folder_button.clicked.connect(self.remove_selected_folder)
        self.reindex_button.clicked.connect(lambda: self.start_index([]))
        self.folder_filter.currentIndexChanged.connect(lambda _: self.refresh_library())
        self.index_panel.pause_toggled.connect(self._pause_index)
        self.index_panel.cancel_clicked.connect(self._cancel_index)
        qp = self.query_pane
        qp.path_chosen.connect(self.query_path)
        qp.data_given.connect(self.query_data)
        qp.text_entered.connect(self.query_text)
        qp.paste_clicked.connect(self.paste)
        qp.stop_clicked.connect(self.stop)
        qp.get_text.clicked.connect(self._get_text_encoder)
        qp.box_changed.connect(self.query_box)
        for grid in (self.library_grid, self.results_grid, self.duplicates.grid):
            grid.find_requested.connect(self.query_photo)
            grid.open_requested.connect(self.result_actions.open)
            grid.reveal_requested.connect(self.result_actions.reveal)
            grid.copy_requested.connect(self.copy_path)
        for grid in (self.library_grid, self.results_grid):
            grid.selection_action.connect(lambda what, g=grid: self._selection_action(g, what))
        self.results_grid.preview_requested.connect(self.toggle_preview)
        self.preview_page.step.connect(self.results.step)
        self.preview_page.leave.connect(self.toggle_preview)
        self.query.query_image.connect(self._query_image)
        self.query.results.connect(self._results)
        self.query.status.connect(self._query_status)
        self.query.finished_query.connect(self._query_finished)
        self.query.failed.connect(self._query_failed)
        self.query.model_missing.connect(self._model_missing)
        self.query.notice.connect(self._query_notice)
        self.model_panel.installed.connect(self._model_installed)
        self.welcome.installed.connect(self._model_installed)
        self.welcome.add_folder.connect(self.add_folder)
        self.welcome.choose_encoder.connect(self.preferences.choose_encoder)
        self.preferences.encoder_chosen.connect(self.use_encoder)
        self.settings_panel.reranker_changed.connect(self._reranker_changed)
        self.settings_panel.get_llm.connect(self._get_llm)
        self.watch_box.toggled.connect(self.set_watching)
        self.watch_bridge.batch.connect(self._watch_batch)
        self.watch_bridge.error.connect(self.error)

    # --- messages ----------------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """A passing message: the status line (elided, never widens the window) and the log."""
        self.status_line.show_text(text)
        self.log_book.add(text)

    def error(self, message: str, details: str = "") -> None:
        """Something went wrong: a wrapped message bar (the full text under Details, and in the log)."""
        plain = for_desktop(message)
        self.message.show_message(plain, "error", for_desktop(details) if details else "")
        self.log_book.add(f"error: {message}")

    _error = error  # the name the watcher and tasks were wired to

    def show_log(self) -> None:
        LogDialog(self.log_book, self).show()

    def show_about(self) -> None:
        AboutDialog(self).show()

    def show_preferences(self) -> None:
        self.preferences.show()
        self.preferences.raise_()

    def show_welcome(self) -> None:
        self.tabs.setCurrentIndex(self.library_tab_index)
        self.library_stack.setCurrentWidget(self.welcome)

    # --- watching ----------------------------------------------------------------------------------------------
    def set_watching(self, on: bool) -> None:
        """Follow file-system changes in the library's folders (edgeret.watch), or stop following them.

        Not while the app's own indexing runs, and not before the library exists: then it starts after the run.
        """
        self._stop_watcher()
        if on and not self.index_running() and Library.exists(self.library_path):
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
        self.say(f"folders changed: {indexed} photos indexed")
        self.refresh_library()

    # --- library -----------------------------------------------------------------------------------------------
    def refresh_library(self) -> None:
        folder = self.folder_filter.currentData()
        text = self.settings_panel.settings().text_encoder
        self.tasks.run(lambda: _read_library(self.library_path, folder, self.settings.encoder, text),
                       self._library_read, self.error)

    def _library_read(self, info: dict) -> None:
        self.library_info = info
        self.photo_model.set_photos(info["photos"])
        self._prepare_tokens()
        self.roots.clear()
        self.roots.addItems([display(r) for r in info["roots"]])
        current = self.folder_filter.currentData()
        self.folder_filter.blockSignals(True)
        self.folder_filter.clear()
        self.folder_filter.addItem("All folders", None)
        for r in info["roots"]:
            self.folder_filter.addItem(display(r), r)
        self.folder_filter.setCurrentIndex(max(0, self.folder_filter.findData(current)))
        self.folder_filter.blockSignals(False)
        if not self.index_running():
            self.index_panel.show_failures(info["failures"])
        self._show_first_start(info)
        ok, reason, model = info["text"]
        self.query_pane.set_text_available(ok, reason, can_get=model is not None)
        self._text_model = model
        failed = f" · {len(info['failures'])} could not be read" if info["failures"] else ""
        self.say(f"{info['indexed']:,} photos{failed} · library {display(str(self.library_path))}"
                 if info["indexed"] else "No photos in the library yet")

    def _show_first_start(self, info: dict) -> None:
        """The welcome page while the library is empty; remembered folders are indexed once the encoder is there."""
        empty = info["indexed"] == 0 and not self.index_running()
        self.welcome.set_folders(info["roots"], info["encoder_ready"])
        self.welcome.refresh_models()
        if empty:
            self.library_stack.setCurrentWidget(self.welcome)
        elif self.library_stack.currentWidget() is self.welcome:
            self.library_stack.setCurrentIndex(1)
        pending = info["roots"] and info["indexed"] == 0 and not info["failures"]
        if pending and info["encoder_ready"] and not self.index_running() and not self._auto_indexed:
            self._auto_indexed = True  # once: a folder without photos must not index in a loop
            self.start_index([])

    def add_folder(self, folder: str | None = None) -> None:
        folder = folder or QFileDialog.getExistingDirectory(self, "Add a photo folder", desktop.pictures_dir())
        if folder:
            self.start_index([folder])

    def remove_selected_folder(self) -> None:
        item = self.roots.currentItem()
        if item is None:
            return
        if self.index_running():
            self.say("wait for indexing to finish (or cancel it) before removing a folder")
            return
        root = self.library_info.get("roots", [])[self.roots.row(item)]
        self.tasks.run(lambda: _remove_root(self.library_path, root), self._root_removed, self.error)

    def index_running(self) -> bool:
        return self.index_worker is not None and self.index_worker.isRunning()

    def start_index(self, roots: list[str]) -> None:
        if self.index_running():
            self.say("already indexing; wait or cancel first")
            return
        s = self.settings_panel.settings()
        self._stop_watcher()  # one writer at a time: the watcher resumes, following any new folder, after the run
        w = self.index_worker = IndexWorker(self.library_path, roots, s.encoder, s.threads, parent=self)
        w.progress.connect(self.index_panel.on_progress)
        w.report.connect(self._index_report)
        w.failed.connect(self._index_failed)
        w.model_missing.connect(self._index_needs_model)
        w.finished.connect(self._index_thread_done)
        self.index_panel.set_running(True)
        if roots:
            self.welcome.set_folders(self.library_info.get("roots", []) + roots, True)
        w.start()

    def _pause_index(self, paused: bool) -> None:
        if self.index_worker is not None:
            self.index_worker.set_paused(paused)

    def _cancel_index(self) -> None:
        if self.index_worker is not None:
            self.index_worker.cancel()

    def _index_failed(self, message: str) -> None:
        self.index_panel.finish("stopped: see the message above")
        self.error(message)

    def _root_removed(self, n: int) -> None:
        self.say(f"removed a folder ({n} photos)")
        self.refresh_library()

    def _index_thread_done(self) -> None:
        if self.index_worker is not None:
            self.index_worker.deleteLater()
        self.index_worker = None
        self.refresh_library()
        self.set_watching(self.watch_box.isChecked())

    def _index_report(self, report) -> None:
        state = "cancelled" if report.cancelled else "done"
        self.index_panel.finish(f"{state} in {report.seconds:.1f}s: {report.indexed} indexed, {report.unchanged} "
                                f"unchanged, {report.moved} moved, {report.removed} removed, {len(report.failed)} "
                                "could not be read")
        self.index_panel.show_failures(report.failed)

    def _index_needs_model(self, role: str, name: str, message: str) -> None:
        self.index_panel.finish("waiting for the image encoder (see Library)")
        self.log_book.add(message)
        self.show_welcome()

    def use_encoder(self, folder: str) -> None:
        """An encoder folder the user picked (Preferences or the welcome page): new libraries are built with it."""
        self.settings = replace(self.settings, encoder=folder)
        self.settings_panel.encoder = folder
        if self.prefs is not None:
            self.prefs.setValue("models/encoder", folder)
        self.say(f"image encoder: {display(folder)}")
        self._auto_indexed = False
        self.refresh_library()

    def _model_installed(self, role: str, name: str) -> None:
        self.settings_panel.refresh_models()
        self.say(f"{name} installed")
        panel = self.settings_panel
        if role == "reranker" and (not panel.rerank.isChecked() or panel.kind.currentData() == "sv"):
            panel.set_reranker("mllm")  # the LLM the user just fetched is what they want to use
        if role == "encoder":
            self._auto_indexed = False
            self.refresh_library()  # remembered folders are indexed now
        elif role == "text-encoder":
            self.refresh_library()
        elif self.last_query is not None:
            self._submit(**self.last_query)

    def _model_missing(self, role: str, name: str, message: str) -> None:
        self.log_book.add(message)
        self.model_panel.show_missing(role, name, message)

    def _get_llm(self) -> None:
        from edgeret.rerankers import default_reranker

        self.model_panel.show_missing("reranker", default_reranker(), "")

    def _get_text_encoder(self) -> None:
        if getattr(self, "_text_model", None):
            self.model_panel.show_missing("text-encoder", self._text_model, "")

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
        panel = self.settings_panel
        judge = panel.active_reranker()
        if job.get("text") is not None and judge != "mllm":
            judge = None  # only the MLLM judges a description
        self.result_model.clear()
        self.result_model.set_judging(judge, panel.thresholds(), panel.lam.value())
        self.results_grid.set_boundary(None)
        self.gen = self.query.submit(panel.settings(), **job)
        self.query_pane.started(display(source))
        self.results.set_query(job.get("data") or job.get("path"), caption=job.get("text"), box=job.get("box"))
        if job.get("text") is not None:
            self.query_pane.show_text_query()
        self.tabs.setCurrentIndex(self.results_tab_index)

    def _reranker_changed(self) -> None:
        """Switching who checks re-runs the current query; a banner for a model no longer needed goes."""
        if self.settings_panel.kind.currentData() == "sv" or not self.settings_panel.rerank.isChecked():
            self.model_panel.hide_for("reranker")  # sv needs no model, and with checking off nothing does
        self._prepare_tokens()
        if self.last_query is not None:
            self._submit(**self.last_query)

    def _prepare_tokens(self) -> None:
        """Prepare the chosen re-ranker's visual tokens in the background (gui/prepare_worker.py), if it is an
        installed MLLM and the library has photos; not while the app's own indexing runs."""
        if self.library_info.get("photos") and not self.index_running():
            self.prepare.ensure(self.settings_panel.settings())

    def paste(self) -> None:
        if not self.query_pane.accept_mime(QGuiApplication.clipboard().mimeData()):
            self.say("the clipboard holds no image")

    def stop(self) -> None:
        if self.central.currentWidget() is self.preview_page:
            self.toggle_preview()
        elif self.query_pane.stop.isEnabled():
            self.query.stop()  # the worker answers with finished_query(gen, "stopped")
            self.query_pane.status.setText("stopping…")

    def _query_status(self, gen: int, text: str) -> None:
        if gen == self.gen:
            self.query_pane.status.setText(text)

    def _query_notice(self, gen: int, text: str) -> None:
        if gen == self.gen:
            self.message.show_message(for_desktop(text), "warning", text)
            self.log_book.add(text)

    def _query_image(self, gen: int, image, size=None) -> None:
        if gen == self.gen:
            self.query_pane.show_image(image, size)

    def _results(self, gen: int, results: list, judged: int, total: int) -> None:
        if gen != self.gen:
            return
        self.result_model.set_results(results)
        self.query_pane.progress(judged, total)
        if total:
            self.query_pane.status.setText(f"checking: {judged} of {total} done (Esc stops)")
        if self.results_grid.currentIndex().row() < 0 and results:
            self.results_grid.setCurrentIndex(self.result_model.index(0))
        self._update_boundary()
        self.results.show_current()

    def _update_boundary(self) -> None:
        m = self.result_model
        end = None if m.reranker is None else matches_end([r.p_same for r in m.results], m.thresholds)
        self.results_grid.set_boundary(end)

    def _query_finished(self, gen: int, state: str) -> None:
        if gen != self.gen:
            return
        n = self.result_model.rowCount()
        if state == "first stage" and self.result_model.reranker is not None:
            self.result_model.set_judging(None, self.result_model.thresholds, self.result_model.lam)
            self._update_boundary()  # nothing judged after all (model missing or unusable): nothing pending
            self.results.show_current()
        same = sum(self.result_model.verdict(r) is Verdict.SAME for r in range(n))
        text = {"first stage": f"{n} results, ranked by similarity (not checked)",
                "re-ranked": f"{n} results checked: {same} called Same object" +
                              (" (the green line marks where matches end)" if same else ""),
                "stopped": "stopped: the results so far stay"}[state]
        self.query_pane.finished(text)

    def _query_failed(self, gen: int, message: str) -> None:
        if gen == self.gen:
            self.query_pane.finished(f"error: {for_desktop(message)}")
            self.error(message)

    # --- full-window preview -----------------------------------------------------------------------------------
    def toggle_preview(self) -> None:
        """Space: the compare view over the whole window (arrows step through results); Space or Esc goes back."""
        if self.central.currentWidget() is self.preview_page:
            self.results.split.insertWidget(1, self.compare)
            self.central.setCurrentWidget(self.split)
            self.results_grid.setFocus()
        elif self.result_model.rowCount():
            self.preview_page.add_view(self.compare)
            self.central.setCurrentWidget(self.preview_page)
            self.preview_page.setFocus()

    # --- misc --------------------------------------------------------------------------------------------------
    def _selection_action(self, grid, what: str) -> None:
        grid.setFocus()
        if what == "export":
            self.result_actions.export()
        else:
            self.result_actions.copy_to(move=what == "move-to")

    def copy_path(self, path: str) -> None:
        desktop.copy_path(path)
        n = len(path.splitlines())
        self.say(f"copied {n} paths" if n > 1 else f"copied {display(path)}")

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        self.query_pane.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        self.query_pane.dropEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
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
        self.prepare.shutdown()
        self.model_panel.shutdown()
        self.welcome.shutdown()
        self.duplicates.shutdown()
        self.results.shutdown()
        self.query.shutdown()
        self.thumbs.shutdown()
        self.tasks.wait()
        self.log_book.close()
