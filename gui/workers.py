"""Background work: indexing, queries (the one thread that owns the re-ranker), model installs, small tasks.

Workers only call into edgeret and report through signals; every long call gets a cancel callable, so stopping is
always cooperative and never kills a thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QProgressBar

from edgeret import models
from edgeret.decode import decode_bytes
from edgeret.errors import Cancelled, EdgeretError, LibraryError, ModelMissing
from edgeret.library import Library
from edgeret.session import Query, RerankSpec, Session
from edgeret.settings import DEFAULT_ENCODER, LAMBDA, K

from .wording import size

log = logging.getLogger(__name__)


def to_qimage(image: Image.Image, max_side: int = 512) -> QImage:
    """A small QImage copy of a Pillow image (for showing the query)."""
    im = image.convert("RGB")
    im.thumbnail((max_side, max_side))
    data = im.tobytes()
    return QImage(data, im.width, im.height, 3 * im.width, QImage.Format.Format_RGB888).copy()  # copy owns the bytes


@contextlib.contextmanager
def failures_to(emit: Callable[[str], None], what: str):
    """Show an exception raised on a background thread to the user through `emit`, rather than losing it."""
    try:
        yield
    except EdgeretError as e:
        emit(str(e))
    except Exception as e:
        log.exception("%s failed", what)
        emit(f"{what} failed: {type(e).__name__}: {e}")


EMPTY_LIBRARY = "the library is empty: add a photo folder first"


class CancellableThread(QThread):
    """A worker thread whose long call gets `self._cancel.is_set` as its cancel callable (stopping is cooperative)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._cancel = threading.Event()
        self._last_emit = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    def _throttled(self, signal, done: int, total: int, what: str) -> None:
        """Emit (done, total, what) on `signal` at most ~20 times a second (plenty for a progress bar), and the
        last report always."""
        now = time.monotonic()
        if done == total or now - self._last_emit > 0.05:
            self._last_emit = now
            signal.emit(done, total, what)


# ------------------------------------------------------------------------------------------------------ indexing


class IndexWorker(CancellableThread):
    """Indexes `roots` (none: refresh every root) into the library; pause and cancel between photos."""

    progress = Signal(int, int, str)  # done, total, current path
    report = Signal(object)  # edgeret.indexer.IndexReport
    failed = Signal(str)
    model_missing = Signal(str, str, str)  # role, model name, message

    def __init__(self, library: Path, roots: list[str], encoder: str | None, threads: int, parent=None):
        super().__init__(parent)
        self.library, self.roots, self.encoder, self.threads = library, roots, encoder, threads
        self._paused = threading.Event()

    def set_paused(self, paused: bool) -> None:
        (self._paused.set if paused else self._paused.clear)()

    def _progress(self, done: int, total: int, path: str) -> None:
        self._throttled(self.progress, done, total, path)
        while self._paused.is_set() and not self._cancel.is_set():  # the indexer waits here, between two photos
            time.sleep(0.05)

    def run(self) -> None:
        with failures_to(self.failed.emit, "indexing"):
            with Library(self.library, writable=True) as lib:
                spec = self.encoder or lib.encoder_spec
                try:
                    result = lib.index(self.roots, encoder_spec=spec, threads=self.threads,
                                       progress=self._progress, cancel=self._cancel.is_set)
                except ModelMissing as e:
                    if self.roots:
                        lib.add_roots(self.roots)  # remembered: indexed when the encoder arrives
                    self.model_missing.emit("encoder", spec or DEFAULT_ENCODER, str(e))
                    return
            self.report.emit(result)


# ------------------------------------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class QuerySettings:
    k: int = K
    lam: float = LAMBDA
    rerank: bool = True
    reranker: str = "mllm"  # edgeret.rerankers name: mllm, sv or mllm+sv
    model: str | None = None  # registry name of the re-ranker; None: the registry's default
    vlm: str | None = None  # explicit GGUF text model + mmproj, instead of `model`
    mmproj: str | None = None
    threads: int = 2
    sv_preview: bool = True  # sv verdicts first while the MLLM needs its vision encoder (rerankers.PreviewReranker)
    encoder: str | None = None  # None: the library's own
    text_encoder: str | None = None  # text tower (folder or registry name); None: the one pairing the library


@dataclass(frozen=True)
class QueryJob:
    gen: int
    settings: QuerySettings
    path: str | None = None  # a photo file
    data: bytes | None = None  # a pasted or dropped image
    key: int | None = None  # a library photo: its stored vector is the query
    text: str | None = None  # a description: ranked by text-image cosine, then (if asked) by the MLLM
    box: tuple[int, int, int, int] | None = None  # the region of the query photo to search for (image pixels)


class QueryWorker(QThread):
    """The one thread that owns the library reader, the encoder and the re-ranker (a llama context is not
    thread-safe). Newest query wins: submitting or stopping bumps a generation number that the running query's
    cancel callable watches, so a superseded re-rank stops after the candidate in progress."""

    query_image = Signal(int, QImage, object)  # gen, a copy at most 512 px, the photo's (w, h): boxes are in it
    results = Signal(int, object, int, int)  # gen, list[Result], candidates judged, candidates to judge
    status = Signal(int, str)
    finished_query = Signal(int, str)  # gen, "first stage" | "re-ranked" | "stopped"
    failed = Signal(int, str)
    model_missing = Signal(str, str, str)  # role, model name, message
    notice = Signal(int, str)  # gen, something the user should know that does not stop the query

    def __init__(self, library: Path, parent=None):
        super().__init__(parent)
        self.library_path = library
        self._jobs: queue.Queue[QueryJob | None] = queue.Queue()
        self._gen = 0
        self._session = Session(library)

    def submit(self, settings: QuerySettings, *, path: str | None = None, data: bytes | None = None,
               key: int | None = None, text: str | None = None, box=None) -> int:
        self._gen += 1
        self._jobs.put(QueryJob(self._gen, settings, path, data, key, text, box))
        return self._gen

    def stop(self) -> None:
        """Stop the running re-rank after the candidate in progress; the results so far stay."""
        self._gen += 1

    def shutdown(self) -> None:
        self.stop()
        self._jobs.put(None)
        self.wait(30_000)

    def run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                if job.gen != self._gen:
                    continue  # superseded before it started
                with failures_to(functools.partial(self.failed.emit, job.gen), "query"):
                    self._run(job)
        finally:
            self._session.close()

    def _library(self, s: QuerySettings) -> Session:
        """The session with this query's settings, once its library exists."""
        self._session.configure(threads=s.threads, encoder=s.encoder, text_encoder=s.text_encoder)
        try:
            self._session.library  # noqa: B018  (opens it)
        except LibraryError:
            raise LibraryError(EMPTY_LIBRARY) from None
        return self._session

    def _load_encoder(self, session: Session, s: QuerySettings):
        try:
            return session.encoder()
        except ModelMissing as e:
            self.model_missing.emit("encoder", s.encoder or session.library.encoder_spec or DEFAULT_ENCODER, str(e))
            raise

    def _load_reranker(self, session: Session, s: QuerySettings, gen: int):
        spec = rerank_spec(s)
        if not session.has_reranker(spec):
            self.status.emit(gen, "loading the re-ranker…")
        try:
            return session.reranker(spec)
        except ModelMissing as e:
            self.model_missing.emit("reranker", s.model or s.vlm or spec.model_label(), str(e))
        except EdgeretError as e:  # unusable model files and the like: first-stage results still stand
            self.notice.emit(gen, f"re-ranker unavailable: {e}")
        return None

    def _run_text(self, job: QueryJob) -> None:
        """A text query: text-image cosine, then the MLLM judging whether each photo shows the description."""
        s, gen = job.settings, job.gen
        session = self._library(s)
        if not session.has_text_encoder():
            self.status.emit(gen, "loading the text encoder…")
        session.text_encoder()
        self.status.emit(gen, "searching…")
        hits = session.first_stage(Query(text=job.text), s.k)
        rerank = s.rerank and bool(hits)
        if rerank and s.reranker != "mllm":
            self.notice.emit(gen, "text queries are re-ranked by the multimodal LLM only (spatial verification "
                                  "needs a query photo)")
            rerank = False
        self._rank(session, s, gen, hits, job.text, rerank)

    def _run(self, job: QueryJob) -> None:
        if job.text is not None:
            self._run_text(job)
            return
        s, gen = job.settings, job.gen
        session = self._library(s)
        self._load_encoder(session, s)
        self.status.emit(gen, "searching…")
        if job.data is not None:
            q = Query(image=decode_bytes(job.data), box=job.box)
        else:
            q = Query(key=job.key, box=job.box) if job.key is not None else Query(path=job.path, box=job.box)
        prepared = session.prepare(q, full=True)  # with a box: its region is encoded, re-rankers see it
        assert prepared.image is not None  # a photo query
        self.query_image.emit(gen, to_qimage(prepared.image), prepared.image.size)
        # a library photo is left out of its own results; its stored vector needs no re-encoding
        hits = session.first_stage(q, s.k, prepared, exclude_self=True)
        self._rank(session, s, gen, hits, prepared.rerank, s.rerank and bool(hits))

    def _rank(self, session: Session, s: QuerySettings, gen: int, hits: list, query, rerank: bool) -> None:
        """Emit the first-stage results, then the re-fused ranking after each judged candidate; then the end state."""
        reranker = self._load_reranker(session, s, gen) if rerank else None
        if gen != self._gen:
            self.finished_query.emit(gen, "stopped")
            return
        total = len(hits) if reranker is not None else 0
        if reranker is not None:
            self.status.emit(gen, f"re-ranking {total} candidates…")
        for results in session.rerank(hits, query, reranker, s.lam, lambda: gen != self._gen):
            judged = sum(r.p_same is not None and not r.provisional for r in results)  # previews do not count
            self.results.emit(gen, results, judged, total)
        state = "first stage" if reranker is None else ("stopped" if gen != self._gen else "re-ranked")
        self.finished_query.emit(gen, state)


def rerank_spec(s: QuerySettings) -> RerankSpec:
    """The facade's re-ranker description for the panel's settings."""
    return RerankSpec(s.reranker, model=s.model, vlm=s.vlm, mmproj=s.mmproj, preview=s.sv_preview)


# ------------------------------------------------------------------------------------------------------ duplicates


class DuplicatesWorker(CancellableThread):
    """Finds near-duplicate groups (edgeret.duplicates.find_duplicates) on its own library reader; nothing is moved
    or deleted. With `verify`, a re-ranker (the MLLM when installed, else sv) judges the borderline pairs.
    Cancel is cooperative: the k-NN stops between chunks, verification between pairs."""

    progress = Signal(int, int, str)  # done, total, stage
    found = Signal(object, str)  # list[edgeret.duplicates.Group] (the original first in each), verifier name or ""
    failed = Signal(str)

    def __init__(self, library: Path, threshold: float, k: int, verify: bool = False, parent=None):
        super().__init__(parent)
        self.library, self.threshold, self.k, self.verify = library, threshold, k, verify

    def _progress(self, done: int, total: int, stage: str) -> None:
        self._throttled(self.progress, done, total, stage)

    def run(self) -> None:
        from edgeret.duplicates import find_duplicates, open_verifier

        with failures_to(self.failed.emit, "finding duplicates"):
            try:
                lib = Library(self.library)
            except LibraryError:
                raise LibraryError(EMPTY_LIBRARY) from None
            with lib:
                verifier = open_verifier(lib) if self.verify else None
                try:
                    groups = find_duplicates(lib, threshold=self.threshold, k=self.k, verifier=verifier,
                                             progress=self._progress, cancel=self._cancel.is_set)
                except Cancelled:
                    self.failed.emit("cancelled")
                    return
                finally:
                    if verifier is not None:
                        verifier.close()
            self.found.emit(groups, verifier.name if verifier is not None else "")


class MoveWorker(CancellableThread):
    """Moves the photos of one duplicate group that the user does not keep out of the library's folders
    (edgeret.duplicates.move_duplicates: an undo log first, never deleting), or undoes a move from its log; then
    lets the library catch up (an index run, skipped when another writer holds the library)."""

    moved = Signal(object, object)  # edgeret.duplicates.MoveReport, the Group it was asked to thin
    undone = Signal(object, object)  # MoveReport of the files put back, {path: library key} of those found again
    failed = Signal(str)

    def __init__(self, library: Path, group=None, keep: set[int] | None = None, dest: Path | None = None,
                 undo: str | None = None, parent=None):
        super().__init__(parent)
        self.library, self.group, self.keep, self.dest, self.undo_log = library, group, keep or set(), dest, undo

    def run(self) -> None:
        from edgeret.duplicates import keep_only, move_duplicates, undo_moves

        with failures_to(self.failed.emit, "moving photos"):
            if self.undo_log is not None:
                report = undo_moves(self.undo_log, cancel=self._cancel.is_set)
                self._catch_up()
                with Library(self.library) as lib:  # photos back in the library have new keys
                    keys = {e.dst: lib.key_for_path(e.dst) for e in report.moved}
                self.undone.emit(report, keys)
            else:
                assert self.dest is not None, "a move needs a destination"
                with Library(self.library) as lib:
                    roots = lib.roots()
                report = move_duplicates([keep_only(self.group, self.keep)], self.dest, roots=roots,
                                         cancel=self._cancel.is_set)
                self._catch_up()
                self.moved.emit(report, self.group)

    def _catch_up(self) -> None:
        from edgeret.duplicates import refresh_after_moves

        try:
            refresh_after_moves(self.library)
        except EdgeretError as e:  # e.g. the encoder is not installed: the next index run catches up instead
            log.warning("the library could not catch up after moving photos: %s", e)


# -------------------------------------------------------------------------------------------------- model installs


class ModelWorker(CancellableThread):
    """Downloads the models `names` one after the other, or imports one model from `path`; byte progress over the
    whole queue, and cancel (a cancelled or cut download keeps its bytes: the next start resumes)."""

    progress = Signal(object, object, str)  # bytes done, bytes total (Python ints: models exceed 2 GB), file
    installed = Signal(str, str)  # model name, folder (once per model)
    error = Signal(object)  # the exception itself (NetworkError says whether the network is there at all)

    def __init__(self, name: str | None = None, path: str | None = None, parent=None, names: list[str] | None = None):
        super().__init__(parent)
        self.names = names if names is not None else ([name] if name else [])
        self.name, self.path = name, path
        self._base = 0
        self._total = 0

    def _progress(self, p: models.Progress) -> None:
        self.progress.emit(self._base + p.done, max(self._total, self._base + p.total), p.file)

    def run(self) -> None:
        try:
            if self.path is not None:
                self._import()
                return
            infos = [models.get(n) for n in self.names]
            self._total = sum(i.size for i in infos)
            for info in infos:
                folder = models.pull(info.name, progress=self._progress, cancel=self._cancel.is_set)
                self._base += info.size
                self.installed.emit(info.name, str(folder))
        except EdgeretError as e:
            log.warning("model install stopped: %s", e)
            self.error.emit(e)
        except Exception as e:
            log.exception("model install failed")
            self.error.emit(e)

    def _import(self) -> None:
        """`name` from `path`; or each of `names` whose files are in `path` (or in path/NAME); or whatever model
        the files in `path` are recognised as."""
        cancel = self._cancel.is_set
        assert self.path is not None, "an import needs a path"
        if self.name or not self.names:
            folder = models.import_model(self.path, self.name, progress=self._progress, cancel=cancel)
            self.installed.emit(Path(folder).name, str(folder))
            return
        done = 0
        for name in self.names:
            for src in (Path(self.path), Path(self.path) / name):
                try:
                    folder = models.import_model(src, name, progress=self._progress, cancel=cancel)
                except ModelMissing:
                    continue  # this model's files are not here
                self.installed.emit(name, str(folder))
                done += 1
                break
        if not done:
            folder = models.import_model(self.path, progress=self._progress, cancel=cancel)
            self.installed.emit(Path(folder).name, str(folder))


class InstallsModels:
    """What the first-start page and the missing-model banner share about installing: one ModelWorker at a time,
    its byte progress on `bar` and the `detail` line, Cancel, and a clean stop at shutdown. The widget (this mixin
    comes first in its bases) has `bar` and `detail` and defines _busy(), _installed(name, folder), _failed(error)."""

    bar: QProgressBar
    detail: QLabel
    worker: ModelWorker | None = None
    last_progress: tuple[int, int] | None = None  # the last (bytes done, bytes total) shown

    def _busy(self, busy: bool) -> None:
        raise NotImplementedError

    def _installed(self, name: str, folder: str) -> None:
        raise NotImplementedError

    def _failed(self, error: BaseException) -> None:
        raise NotImplementedError

    def _start(self, worker: ModelWorker) -> None:
        self.worker = worker
        worker.progress.connect(self._progress)
        worker.installed.connect(self._installed)
        worker.error.connect(self._failed)
        worker.finished.connect(self._finished)
        self.bar.setValue(0)
        self.detail.setText("starting…")
        self._busy(True)
        worker.start()

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _progress(self, done: int, total: int, file: str) -> None:
        self.last_progress = (done, total)
        self.bar.setValue(int(1000 * done / total) if total else 0)
        self.detail.setText(f"{file}: {size(done)} of {size(total)}")

    def _finished(self) -> None:
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None
        self._busy(False)

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(10_000)


# ----------------------------------------------------------------------------------------------------- small tasks


class _TaskSignals(QObject):
    done = Signal(object)
    failed = Signal(str)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], object], signals: _TaskSignals):
        super().__init__()
        self.fn, self.signals = fn, signals

    def run(self) -> None:
        with failures_to(self.signals.failed.emit, "background task"):
            self.signals.done.emit(self.fn())


class Tasks(QObject):
    """Short library reads and writes (photo lists, status, removing a folder) off the GUI thread."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # one at a time: results arrive in the order asked
        self._live: set[_TaskSignals] = set()

    def run(self, fn: Callable[[], object], on_done: Callable[[object], None],
            on_failed: Callable[[str], None] | None = None) -> None:
        signals = _TaskSignals()  # created here, so its signals are delivered on the GUI thread
        self._live.add(signals)
        signals.done.connect(on_done)
        if on_failed is not None:
            signals.failed.connect(on_failed)
        signals.done.connect(lambda _: self._live.discard(signals))
        signals.failed.connect(lambda _: self._live.discard(signals))
        self.pool.start(_Task(fn, signals))

    def wait(self, ms: int = 10_000) -> bool:
        return self.pool.waitForDone(ms)
