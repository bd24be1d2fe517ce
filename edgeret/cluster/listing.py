"""Photos under the job's sources: local (or shared) folders through edgeret's scan, or fsspec URLs (s3://…).

A URL source needs the fsspec filesystem package for its scheme (s3fs, gcsfs, …) on the driver and the workers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from ..errors import UsageError
from ..indexer import stat_all
from ..scan import is_image_name, scan


def is_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def normalize(source: str) -> str:
    """The form a source is remembered in: a URL as given, a local path absolute and resolved."""
    if is_url(source):
        return source.rstrip("/")
    return str(Path(source.removeprefix("file://")).expanduser().resolve())


def present(sources: list[str]) -> list[str]:
    """The sources that exist now (an unmounted share is not a folder of deleted photos)."""
    return [s for s in sources if _exists(s)]


def _exists(source: str) -> bool:
    if not is_url(source):
        return Path(source).exists()
    fs, root = _fs(source)
    return fs.exists(root)


def listing(sources: list[str], cancel: Callable[[], bool] | None = None) -> Iterator[tuple[str, int, int]]:
    """(path or URL, size, mtime_ns) of every photo under `sources`, local ones in scan order."""
    local = [Path(s) for s in sources if not is_url(s)]
    yield from stat_all(scan(local, cancel=cancel))
    for source in (s for s in sources if is_url(s)):
        yield from _list_url(source)


def _fs(url: str):
    try:
        import fsspec
    except ImportError:
        raise UsageError(f"{url}: URL sources need fsspec and its filesystem package for the scheme") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise UsageError(f"{url}: {e}") from None


def _list_url(url: str) -> Iterator[tuple[str, int, int]]:
    fs, root = _fs(url)
    if not fs.exists(root):
        return
    scheme = url.split("://", 1)[0]  # photos are named as the source is, so they stay under it
    for path, info in sorted(fs.find(root, detail=True).items()):
        name = path.rsplit("/", 1)[-1]
        if info.get("type") == "file" and is_image_name(name) and not _hidden(path[len(root):]):
            yield f"{scheme}://{path}", int(info.get("size") or 0), _mtime_ns(info)


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/") if part)


def _mtime_ns(info: dict) -> int:
    """Object stores name the modification time differently; what matters is that it changes with the object."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, int | float):
            return int(value * 1e9)
    return 0


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file for `path`: the path itself, or a temporary copy of a URL's object (removed afterwards)."""
    if not is_url(path):
        yield path
        return
    fs, remote = _fs(path)
    fd, tmp = tempfile.mkstemp(prefix="edgeret-", suffix=os.path.splitext(remote)[1])
    try:
        with os.fdopen(fd, "wb") as out, fs.open(remote, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield tmp
    finally:
        os.unlink(tmp)
