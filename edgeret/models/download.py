"""Verified downloads from the hub with resume (pull)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from edgeret.errors import Cancelled, ModelError, NetworkError
from edgeret.settings import models_dir

from .install import (
    CancelFn,
    Progress,
    ProgressFn,
    _check_hash,
    _install,
    _lock,
    _never,
    _new_staging,
    _refuse_unverified,
    _sha256_file,
    _structure_check,
)
from .registry import (
    CHUNK,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    ModelFile,
    ModelInfo,
    get,
)

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------- pull


class _Downloader:
    """Downloads one model's files into resumable .part files."""

    def __init__(
        self,
        info: ModelInfo,
        root: Path,
        progress: ProgressFn | None,
        cancel: CancelFn,
        hub: str | None,
        timeout: tuple[float, float],
        retries: int,
    ):
        import requests  # imported lazily: only pulls need it

        self.requests = requests
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "edgeret"
        # identity: byte ranges must address the file itself, not a compressed stream
        self.session.headers["Accept-Encoding"] = "identity"
        import urllib3

        self.stream_errors = (urllib3.exceptions.HTTPError,)  # socket errors arrive wrapped in these
        self.info, self.root, self.hub = info, root, hub
        self.progress, self.cancel = progress, cancel
        self.timeout, self.retries = timeout, retries
        self.partial = root / ".partial" / info.name
        self.done_before = 0  # bytes of files already finished
        self._answered = False  # did the server answer any request (then the network is there)

    def report(self, f: ModelFile, file_done: int, file_total: int) -> None:
        if self.progress:
            self.progress(Progress.of(self.info, f, file_done, file_total, self.done_before))

    def fetch(self, f: ModelFile) -> Path:
        """Download (or resume) one file; return its .part path, complete but not yet hash-checked."""
        self.partial.mkdir(parents=True, exist_ok=True)
        part = self.partial / f"{f.name}.part"
        for attempt in range(self.retries + 1):
            try:
                self._fetch_once(f, part)
                return part
            except (
                self.requests.ConnectionError,
                self.requests.Timeout,
                self.requests.exceptions.ChunkedEncodingError,
                *self.stream_errors,
                _ShortRead,
            ) as e:
                if attempt == self.retries:
                    have = part.stat().st_size if part.exists() else 0
                    offline = not have and isinstance(e, self.requests.ConnectionError) and not self._answered
                    raise NetworkError(self._network_message(f, e, part), self.info.name, f.name,
                                       self.info.url(f, self.hub), kept=have, offline=offline) from e
                log.info("download of %s interrupted (%s); resuming", f.name, e)
                time.sleep(min(2.0, 0.2 * (attempt + 1)))
        raise AssertionError("unreachable")

    def _network_message(self, f: ModelFile, e: Exception, part: Path) -> str:
        have = part.stat().st_size if part.exists() else 0
        # A stall mid-body surfaces as ConnectionError wrapping urllib3's ReadTimeoutError, hence the text test.
        stalled = isinstance(e, self.requests.Timeout) or "timed out" in str(e)
        why = "the server stopped sending data" if stalled else "the connection failed or was cut"
        kept = (
            f"{have} bytes are kept; run `edgeret models pull {self.info.name}` again to resume"
            if have
            else (f"try `edgeret models pull {self.info.name}` again when online")
        )
        return (
            f"Downloading {f.name} from {self.info.url(f, self.hub)} failed: {why} ({type(e).__name__}). {kept}. "
            f"Without network, use `edgeret models import PATH`."
        )

    def _fetch_once(self, f: ModelFile, part: Path) -> None:
        have = part.stat().st_size if part.exists() else 0
        if f.size and have > f.size:  # corrupt leftover: longer than the real file
            part.unlink()
            have = 0
        if f.size and have == f.size:
            self.report(f, have, f.size)
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = self.info.url(f, self.hub)
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            self._answered = True
            if r.status_code == 416 and have:  # our range starts at/after the end: restart cleanly
                part.unlink()
                raise _ShortRead("server refused the resume range; restarting")
            self._raise_for_status(f, url, r)
            if have and r.status_code != 206:  # server ignored Range: start over
                have = 0
            expected = self._expected_total(f, r, have)
            mode = "ab" if have else "wb"
            with part.open(mode) as out:
                done = have
                # read1 hands over whatever arrived, so bytes received before a drop are kept for the resume
                while chunk := r.raw.read1(CHUNK):
                    if self.cancel():
                        raise Cancelled(f"Download of {self.info.name} cancelled; run pull again to resume")
                    out.write(chunk)
                    done += len(chunk)
                    self.report(f, done, expected or done)
        if expected and done < expected:
            raise _ShortRead(f"got {done} of {expected} bytes")

    def _expected_total(self, f: ModelFile, r, have: int) -> int:
        length = r.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else 0
        if f.size and total and total != f.size:
            raise ModelError(f"{f.name}: the server offers {total} bytes but the registry says {f.size}; refused")
        return f.size or total

    @staticmethod
    def _raise_for_status(f: ModelFile, url: str, r) -> None:
        code = r.status_code
        if code in (200, 206):
            return
        if code in (401, 403):
            why = "access denied (the repository may be gated or private)"
        elif code == 404:
            why = "not found (the registry entry may be out of date)"
        elif code >= 500:
            why = "server error; try again later"
        else:
            why = f"unexpected response {r.reason}"
        raise ModelError(f"Downloading {f.name} from {url} failed: HTTP {code}, {why}")


class _ShortRead(Exception):
    """The body ended before Content-Length: retry with a Range request."""


def partial_bytes(name: str, root: Path | None = None) -> int:
    """Bytes of `name` already downloaded by an interrupted pull (the next pull resumes from them)."""
    folder = (root or models_dir()) / ".partial" / name
    return sum(p.stat().st_size for p in folder.glob("*.part")) if folder.is_dir() else 0


def pull(
    name: str,
    *,
    trust_unverified: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    registry: Mapping[str, ModelInfo] | None = None,
    root: Path | None = None,
    hub: str | None = None,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    retries: int = 2,
    force: bool = False,
) -> Path:
    """Download, verify and atomically install a registry model; returns its folder.

    Interrupted downloads are resumed with HTTP Range requests (also across runs). Every file's sha256 is checked
    against the registry; a mismatch discards the file and installs nothing. Unverified files need
    trust_unverified. `hub` (or EDGERET_HUB_URL) replaces https://huggingface.co.
    """
    info = get(name, registry)
    root = root or models_dir()
    if info.installed(root) and not force:
        return info.folder(root)
    _refuse_unverified(info, trust_unverified)
    cancel = cancel or _never
    root.mkdir(parents=True, exist_ok=True)
    lock = _lock(name, root)
    try:
        dl = _Downloader(info, root, progress, cancel, hub, timeout, retries)
        parts, hashes = {}, {}
        for f in info.files:
            part = dl.fetch(f)
            actual = _sha256_file(part, cancel)
            if f.sha256 is not None and actual != f.sha256:
                part.unlink()  # a wrong file must not be resumed from
            _check_hash(f, actual, f"downloaded from {info.url(f, hub)}")
            got = part.stat().st_size
            if f.size and got != f.size:
                part.unlink()  # the size is taken first: stat after unlink turned this into "Cannot write"
                raise ModelError(f"{f.name}: size {got} differs from the registry's {f.size}")
            _structure_check(part, f.name)
            parts[f.name], hashes[f.name] = part, actual
            dl.done_before += part.stat().st_size
        return _install_parts(info, root, parts, hashes, source=info.source(hub))
    except OSError as e:  # disk full, permissions: network errors were already turned into ModelError
        raise ModelError(f"Cannot write model files under {root}: {e}") from e
    finally:
        lock.release()


def _install_parts(info: ModelInfo, root: Path, parts: dict[str, Path], hashes: dict[str, str], source: str) -> Path:
    staging = _new_staging(root, info.name)
    try:
        for fname, part in parts.items():
            part.rename(staging / fname)
        target = _install(staging, info, root, hashes, source)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(root / ".partial" / info.name, ignore_errors=True)
    return target


