"""Installing models atomically: hashing, staging, locks, offline import, verify and remove."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeret.errors import Cancelled, ModelError, ModelMissing
from edgeret.modelfiles import check_gguf, check_onnx
from edgeret.rerank.weights import COPIES
from edgeret.settings import models_dir

from .registry import (
    _GENERATED,
    CHUNK,
    MANIFEST,
    ModelFile,
    ModelInfo,
    get,
    load_registry,
)

log = logging.getLogger(__name__)

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

    @classmethod
    def of(cls, info: ModelInfo, f: ModelFile, file_done: int, file_total: int, before: int) -> Progress:
        """`f` at file_done of file_total bytes, after `before` bytes of the model's earlier files."""
        return cls(info.name, f.name, file_done, file_total, before + file_done, max(info.size, before + file_total))


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


def _never() -> bool:
    return False


def _sha256_file(path: Path, cancel: CancelFn = _never, on_bytes: Callable[[int], None] | None = None,
                 copy_to: Path | None = None) -> str:
    """sha256 of `path`, read once in CHUNKs and written to `copy_to` on the way when given (an import);
    cancel() is asked before each chunk, on_bytes(bytes so far) told after it."""
    h = hashlib.sha256()
    done = 0
    with path.open("rb") as f, (copy_to.open("wb") if copy_to else contextlib.nullcontext()) as out:
        while chunk := f.read(CHUNK):
            if cancel():
                raise Cancelled("Import cancelled" if copy_to else "Cancelled")
            h.update(chunk)
            if out is not None:
                out.write(chunk)
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


# ----------------------------------------------------------------------------------------------- import


def _source_file(folder: Path, f: ModelFile) -> Path | None:
    """Where `f` sits in a user-supplied folder: by its own name, its repo path, or the repo path's base name."""
    for candidate in (folder / f.name, folder / f.path, folder / Path(f.path).name):
        if candidate.is_file():
            return candidate
    return None


def _sizes_match(folder: Path, info: ModelInfo) -> bool:
    return all(not f.size or ((src := _source_file(folder, f)) is not None and src.stat().st_size == f.size)
               for f in info.files)


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
            if source is None:  # gone since the model was matched
                raise ModelError(f"{folder}: {f.name} is missing")
            total = source.stat().st_size

            def tick(n: int, f=f, total=total, base=done_before) -> None:
                if progress:
                    progress(Progress.of(info, f, n, total, base))

            actual = _sha256_file(source, cancel, tick, copy_to=staging / f.name)
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
                progress(Progress.of(info, f, n, size, base))

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
