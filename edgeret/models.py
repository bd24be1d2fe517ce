"""Model registry, verified downloads with resume, offline import, verification and name resolution.

Layout under models_dir():
    NAME/                 an installed model: its files, generated JSON (preprocess.json / reranker.json / text.json)
                          and MANIFEST (written last); only ever created by one directory rename
    .partial/NAME/        resumable downloads (FILE.part); survive interruptions, removed after install
    .staging/             directories being assembled; never visible as installed
    .locks/NAME.lock      one pull/import of a model at a time
No function here prints; progress goes through callbacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgeret.errors import Cancelled, ModelError, ModelMissing, NetworkError
from edgeret.modelfiles import check_gguf, check_onnx
from edgeret.rerank.weights import COPIES
from edgeret.settings import ENV_HUB_URL as HUB_ENV  # noqa: F401  (tests and callers name it so)
from edgeret.settings import ENV_REGISTRY as REGISTRY_ENV  # noqa: F401
from edgeret.settings import hub_url, models_dir, registry_override

log = logging.getLogger(__name__)

DEFAULT_HUB = "https://huggingface.co"
UNVERIFIED = "unverified"
MANIFEST = "edgeret-model.json"
ROLES = ("encoder", "text-encoder", "reranker")
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
CHUNK = 1 << 20
# Generated JSON files per registry table: the encoder/re-ranker code reads these, not the registry.
_GENERATED = {"preprocess": "preprocess.json", "reranker": "reranker.json", "text": "text.json"}


# ----------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name inside the installed folder
    path: str  # path inside the hub repository
    size: int  # exact bytes; 0 when not published
    sha256: str | None  # None when no published hash is known

    @property
    def verified(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    role: str
    description: str
    licence: str
    repo: str
    revision: str
    files: tuple[ModelFile, ...]
    default: bool = False
    config: Mapping[str, dict] = field(default_factory=dict)  # preprocess / reranker / text tables

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def verified(self) -> bool:
        return all(f.verified for f in self.files)

    def url(self, f: ModelFile, hub: str | None = None) -> str:
        base = (hub or hub_url() or DEFAULT_HUB).rstrip("/")
        return f"{base}/{self.repo}/resolve/{self.revision}/{f.path}"

    def folder(self, root: Path | None = None) -> Path:
        return (root or models_dir()) / self.name

    def source(self, hub: str | None = None) -> str:
        return f"{(hub or hub_url() or DEFAULT_HUB).rstrip('/')}/{self.repo}@{self.revision}"

    def installed(self, root: Path | None = None) -> bool:
        return (self.folder(root) / MANIFEST).is_file()


def _parse_file(model: str, raw: dict) -> ModelFile:
    sha = str(raw.get("sha256", UNVERIFIED)).lower()
    if sha != UNVERIFIED and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ModelError(f"Registry entry {model}: bad sha256 {sha!r} for {raw.get('name')}")
    name = raw["name"]
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"Registry entry {model}: file name {name!r} must be a plain file name")
    return ModelFile(
        name=name, path=raw.get("path", name), size=int(raw.get("size", 0)), sha256=None if sha == UNVERIFIED else sha
    )


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _parse_model(name: str, raw: dict) -> ModelInfo:
    if not _MODEL_NAME.fullmatch(name) or ".." in name:  # the name is a folder under the models folder
        raise ModelError(f"Registry entry {name!r}: a model name is letters, digits, '.', '_' and '-' only")
    try:
        role = raw["role"]
        if role not in ROLES:
            raise ModelError(f"Registry entry {name}: unknown role {role!r}")
        return ModelInfo(
            name=name,
            role=role,
            description=raw.get("description", ""),
            licence=raw.get("licence", "unknown"),
            repo=raw["repo"],
            revision=raw.get("revision", "main"),
            files=tuple(_parse_file(name, f) for f in raw["files"]),
            default=bool(raw.get("default", False)),
            config={k: raw[k] for k in _GENERATED if k in raw},
        )
    except KeyError as e:
        raise ModelError(f"Registry entry {name} lacks the {e.args[0]!r} key") from None


def _registry_text(path: Path | None) -> tuple[str, str]:
    """Find the registry: explicit path, EDGERET_REGISTRY, packaged copy, then the source checkout."""
    if path is None:
        path = registry_override()
    if path is not None:
        return Path(path).read_text("utf-8"), str(path)
    packaged = resources.files("edgeret").joinpath("registry.toml")
    if packaged.is_file():
        return packaged.read_text("utf-8"), str(packaged)
    source = Path(__file__).resolve().parent.parent / "models" / "registry.toml"
    if source.is_file():
        return source.read_text("utf-8"), str(source)
    raise ModelError("The model registry (registry.toml) is missing from this installation; reinstall edgeret")


def load_registry(path: str | Path | None = None) -> dict[str, ModelInfo]:
    """Parse the registry into {name: ModelInfo}; raises ModelError on a malformed file."""
    text, where = _registry_text(Path(path) if path else None)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"The model registry {where} is malformed: {e}") from e
    return {name: _parse_model(name, entry) for name, entry in raw.get("models", {}).items()}


def get(name: str, registry: Mapping[str, ModelInfo] | None = None) -> ModelInfo:
    reg = registry if registry is not None else load_registry()
    if name not in reg:
        raise ModelError(f"Unknown model {name!r}. Known models: {', '.join(sorted(reg))}")
    return reg[name]


def default_model(role: str, registry: Mapping[str, ModelInfo] | None = None) -> ModelInfo:
    reg = registry if registry is not None else load_registry()
    for info in reg.values():
        if info.role == role and info.default:
            return info
    raise ModelError(f"The registry names no default {role}")


def list_models(registry: Mapping[str, ModelInfo] | None = None, root: Path | None = None) -> list[dict]:
    """One JSON-ready dict per registry model: name, role, size, licence, installed, path, ..."""
    reg = registry if registry is not None else load_registry()
    root = root or models_dir()
    return [
        {
            "name": m.name,
            "role": m.role,
            "default": m.default,
            "description": m.description,
            "licence": m.licence,
            "size": m.size,
            "verified": m.verified,
            "installed": m.installed(root),
            "path": str(m.folder(root)),
            "files": [f.name for f in m.files],
        }
        for m in reg.values()
    ]


# ---------------------------------------------------------------------------------------------- resolve


def _missing_message(info: ModelInfo, root: Path) -> str:
    files = ", ".join(f.name for f in info.files)
    return (
        f"The {info.role} {info.name!r} is not installed (expected {files} in {info.folder(root)}).\n"
        f"Download it with:   edgeret models pull {info.name}\n"
        f"Without network, copy those files from another machine and run:   edgeret models import PATH"
    )


def _check_folder(path: Path, role: str) -> Path:
    need = {"encoder": ["model.onnx", "preprocess.json"], "text-encoder": ["model.onnx"]}.get(role, [])
    missing = [n for n in need if not (path / n).is_file()]
    if missing:
        raise ModelError(f"{path} is not a usable {role} folder: {', '.join(missing)} missing")
    if role == "reranker" and not (path / "reranker.json").is_file() and not any(path.glob("*.gguf")):
        raise ModelError(f"{path} is not a re-ranker folder: no reranker.json or .gguf files in it")
    return path


def _looks_like_path(spec: str) -> bool:
    return any(sep in spec for sep in ("/", "\\")) or spec.startswith((".", "~")) or spec.endswith((".onnx", ".gguf"))


def resolve(spec: str, role: str, registry: Mapping[str, ModelInfo] | None = None, root: Path | None = None) -> Path:
    """Turn a model spec (a folder/file path, or a registry name) into an installed path. Never touches the network.

    Raises ModelMissing (naming the files and the pull/import commands) when a registry model is not installed,
    ModelError for unknown names, role mismatches and unusable folders.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    root = root or models_dir()
    path = Path(spec).expanduser()
    if path.exists():
        return path.resolve() if path.is_file() else _check_folder(path.resolve(), role)
    if _looks_like_path(spec):
        raise ModelMissing(f"No such model file or folder: {path}")
    reg = registry if registry is not None else load_registry()
    info = reg.get(spec)
    if info is None:
        same_role = sorted(n for n, m in reg.items() if m.role == role)
        raise ModelError(f"Unknown {role} {spec!r}: not a path and not in the registry ({', '.join(same_role)})")
    if info.role != role:
        raise ModelError(f"{spec!r} is registered as a {info.role} model, not as a {role} model")
    if not info.installed(root):
        raise ModelMissing(_missing_message(info, root), model=info.name)
    return info.folder(root)


def reranker_files(folder: Path) -> tuple[Path, Path, dict]:
    """(text model GGUF, mmproj GGUF, reranker.json settings) of an installed re-ranker folder."""
    cfg_path = folder / "reranker.json"
    if not cfg_path.is_file():
        raise ModelError(f"{folder} has no reranker.json; pass --vlm and --mmproj explicitly")
    cfg = json.loads(cfg_path.read_text("utf-8"))
    return folder / cfg["model"], folder / cfg["mmproj"], cfg


# ---------------------------------------------------------------------------------------- shared helpers


@dataclass(frozen=True)
class Progress:
    """One progress report: the current file and the totals over the whole model."""

    model: str
    file: str
    file_done: int
    file_total: int
    done: int
    total: int


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


def _never() -> bool:
    return False


def _sha256_file(path: Path, cancel: CancelFn = _never, on_bytes: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            if cancel():
                raise Cancelled("Cancelled")
            h.update(chunk)
            done += len(chunk)
            if on_bytes:
                on_bytes(done)
    return h.hexdigest()


def _structure_check(path: Path, name: str | None = None, full: bool = False) -> None:
    """Header checks by file type (`name` gives the type when `path` is a .part file); `full` parses ONNX whole."""
    suffix = Path(name or path.name).suffix
    if suffix == ".gguf":
        check_gguf(path)
    elif suffix == ".onnx":
        check_onnx(path, full=full)


def _lock(name: str, root: Path):
    from filelock import FileLock, Timeout

    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_dir / f"{name}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ModelError(f"Another edgeret process is installing {name!r}; wait for it to finish") from None
    return lock


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _install(staging: Path, info: ModelInfo, root: Path, hashes: dict[str, str], source: str) -> Path:
    """Write generated JSON and the manifest into `staging`, then make it visible with one rename."""
    for key, filename in _GENERATED.items():
        if key in info.config:
            (staging / filename).write_text(json.dumps(info.config[key], indent=2) + "\n", "utf-8")
    manifest = {
        "name": info.name,
        "role": info.role,
        "repo": info.repo,
        "revision": info.revision,
        "source": source,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {
            f.name: {"size": (staging / f.name).stat().st_size, "sha256": hashes[f.name], "verified": f.verified}
            for f in info.files
        },
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    for p in staging.iterdir():
        with p.open("rb+") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(staging)
    target = info.folder(root)
    trash = None
    if target.exists():  # reinstall: move the old copy aside first (rename cannot replace a non-empty dir)
        trash = root / ".staging" / f"old-{info.name}-{uuid.uuid4().hex[:8]}"
        target.rename(trash)
    staging.rename(target)
    _fsync_dir(root)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return target


def _new_staging(root: Path, name: str) -> Path:
    base = root / ".staging"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))


def _refuse_unverified(info: ModelInfo, trust_unverified: bool) -> None:
    unverified = [f.name for f in info.files if not f.verified]
    if unverified and not trust_unverified:
        raise ModelError(
            f"{info.name}: no published sha256 is known for {', '.join(unverified)}, so its integrity cannot be "
            f"checked. Pass --trust-unverified to accept it anyway (its hash is then recorded on install)."
        )


def _check_hash(f: ModelFile, actual: str, where: str) -> None:
    if f.sha256 is not None and actual != f.sha256:
        raise ModelError(
            f"{f.name}: sha256 mismatch ({where}): expected {f.sha256}, got {actual}. The file was refused and "
            f"nothing was installed."
        )


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
        self.total = info.size
        self.done_before = 0  # bytes of files already finished
        self._answered = False  # did the server answer any request (then the network is there)

    def report(self, f: ModelFile, file_done: int, file_total: int) -> None:
        if self.progress:
            total = max(self.total, self.done_before + file_total)
            self.progress(Progress(self.info.name, f.name, file_done, file_total, self.done_before + file_done, total))

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


# ----------------------------------------------------------------------------------------------- import


def _source_file(folder: Path, f: ModelFile) -> Path | None:
    """Where `f` sits in a user-supplied folder: by its own name, its repo path, or the repo path's base name."""
    for candidate in (folder / f.name, folder / f.path, folder / Path(f.path).name):
        if candidate.is_file():
            return candidate
    return None


def _sizes_match(folder: Path, info: ModelInfo) -> bool:
    return all(not f.size or _source_file(folder, f).stat().st_size == f.size for f in info.files)


def _match_import(folder: Path, only_file: str | None, reg: Mapping[str, ModelInfo]) -> ModelInfo:
    """Pick the registry model whose files are in `folder` (sizes disambiguate same-named files)."""
    found = [m for m in reg.values() if all(_source_file(folder, f) for f in m.files)]
    if only_file:
        found = [m for m in found if any(only_file in (f.name, Path(f.path).name) for f in m.files)]
    exact = [m for m in found if _sizes_match(folder, m)]
    found = exact or found
    if len(found) == 1:
        return found[0]
    if not found:
        examples = "; ".join(f"{m.name}: {', '.join(f.name for f in m.files)}" for m in reg.values())
        raise ModelError(f"No registry model's files were found in {folder}. Expected one of: {examples}")
    raise ModelError(
        f"The files in {folder} fit several models ({', '.join(m.name for m in found)}); name one with --name"
    )


def _copy_hashing(src: Path, dst: Path, cancel: CancelFn, on_bytes: Callable[[int], None]) -> str:
    h = hashlib.sha256()
    done = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            if cancel():
                raise Cancelled("Import cancelled")
            h.update(chunk)
            fout.write(chunk)
            done += len(chunk)
            on_bytes(done)
    return h.hexdigest()


def import_model(
    path: str | Path,
    name: str | None = None,
    *,
    trust_unverified: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    registry: Mapping[str, ModelInfo] | None = None,
    root: Path | None = None,
) -> Path:
    """Install a registry model from files copied by hand (air-gapped machines); returns its folder.

    `path` is a folder holding the model's files (flat, or in the hub repository's layout) or one of the files.
    The model is recognised from its file names and sizes unless `name` is given. Files are copied (the source is
    left alone), hash-checked against the registry and installed atomically.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise ModelMissing(f"Nothing to import: {src} does not exist")
    folder, only_file = (src.parent, src.name) if src.is_file() else (src, None)
    reg = registry if registry is not None else load_registry()
    if name:
        info = get(name, reg)
        missing = [f.name for f in info.files if _source_file(folder, f) is None]
        if missing:
            raise ModelMissing(f"Cannot import {name}: {', '.join(missing)} not found in {folder}")
    else:
        info = _match_import(folder, only_file, reg)
    _refuse_unverified(info, trust_unverified)
    root = root or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    cancel = cancel or _never
    lock = _lock(info.name, root)
    staging = _new_staging(root, info.name)
    try:
        hashes, done_before = {}, 0
        for f in info.files:
            source = _source_file(folder, f)
            total = source.stat().st_size

            def tick(n: int, f=f, total=total, base=done_before) -> None:
                if progress:
                    progress(Progress(info.name, f.name, n, total, base + n, max(info.size, base + total)))

            actual = _copy_hashing(source, staging / f.name, cancel, tick)
            _check_hash(f, actual, f"imported from {source}")
            if f.size and total != f.size:
                raise ModelError(f"{source}: size {total} differs from the registry's {f.size}; refused")
            hashes[f.name] = actual
            done_before += total
        for f in info.files:  # once all are staged: an ONNX model may keep its weights in a sibling file
            try:
                _structure_check(staging / f.name, full=True)
            except ModelError as e:  # name the user's file, not the staging copy
                raise ModelError(str(e).replace(str(staging / f.name), str(_source_file(folder, f)))) from None
        return _install(staging, info, root, hashes, source=f"import:{folder}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    name: str
    path: str
    ok: bool
    problems: list[str]


def _verify_one(info: ModelInfo, root: Path, cancel: CancelFn, progress: ProgressFn | None) -> VerifyResult:
    folder = info.folder(root)
    if not info.installed(root):
        return VerifyResult(info.name, str(folder), False, ["not installed"])
    try:
        recorded = json.loads((folder / MANIFEST).read_text("utf-8")).get("files", {})
    except (OSError, ValueError) as e:
        return VerifyResult(info.name, str(folder), False, [f"unreadable {MANIFEST}: {e}"])
    problems, done = [], 0
    for f in info.files:
        p = folder / f.name
        if not p.is_file():
            problems.append(f"{f.name}: missing")
            continue
        size = p.stat().st_size
        if f.size and size != f.size:
            problems.append(f"{f.name}: size {size}, expected {f.size}")
            continue

        def tick(n: int, f=f, size=size, base=done) -> None:
            if progress:
                progress(Progress(info.name, f.name, n, size, base + n, max(info.size, base + size)))

        actual = _sha256_file(p, cancel, tick)
        expected = f.sha256 or recorded.get(f.name, {}).get("sha256")
        if expected and actual != expected:
            problems.append(f"{f.name}: sha256 {actual} does not match {expected}")
        try:
            _structure_check(p, full=True)
        except ModelError as e:
            problems.append(str(e))
        done += size
    return VerifyResult(info.name, str(folder), not problems, problems)


def verify(
    names: Iterable[str] | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    registry: Mapping[str, ModelInfo] | None = None,
    root: Path | None = None,
) -> list[VerifyResult]:
    """Re-check installed models (all installed ones, or `names`): presence, size, sha256, file headers."""
    reg = registry if registry is not None else load_registry()
    root = root or models_dir()
    infos = [get(n, reg) for n in names] if names else [m for m in reg.values() if m.installed(root)]
    return [_verify_one(info, root, cancel or _never, progress) for info in infos]


def remove(name: str, *, registry: Mapping[str, ModelInfo] | None = None, root: Path | None = None) -> bool:
    """Uninstall a model (and its partial downloads); returns whether anything was removed."""
    info = get(name, registry)
    root = root or models_dir()
    existed = info.folder(root).exists()
    for gguf in info.folder(root).glob("*.gguf"):  # f32 copies made for the re-ranker go with their model
        for copy in (root / COPIES).glob(f"{gguf.stem}-*.f32.gguf"):
            copy.unlink(missing_ok=True)
    if existed:  # rename first so a half-deleted folder never looks installed
        trash = _new_staging(root, f"rm-{name}")
        info.folder(root).rename(trash / name)
        shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(root / ".partial" / name, ignore_errors=True)
    return existed
