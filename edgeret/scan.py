"""Find image files under library roots: deterministic order, no symlink loops, hidden entries skipped."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw"})
IMAGE_EXTENSIONS = RAW_EXTENSIONS | {
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif",
}


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan(
    roots: list[Path],
    include_hidden: bool = False,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[Path]:
    """Yield absolute image paths under `roots`, sorted per directory, each real directory visited once."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[Path] = set()
    for root in roots:
        root = Path(root).expanduser().absolute()
        if root.is_file():
            if is_image_name(root.name) and root not in seen_files:
                seen_files.add(root)
                yield root
            continue
        yield from _walk(root, include_hidden, seen_dirs, seen_files, cancel)


def _walk(directory, include_hidden, seen_dirs, seen_files, cancel) -> Iterator[Path]:
    try:
        st = directory.stat()
    except OSError:
        return
    ident = (st.st_dev, st.st_ino)
    if ident in seen_dirs:  # a symlink loop or a second path to a directory already visited
        return
    seen_dirs.add(ident)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for entry in entries:
        if cancel and cancel():
            return
        if not include_hidden and entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                subdirs.append(Path(entry.path))
            elif entry.is_file() and is_image_name(entry.name):
                path = Path(entry.path)
                if path not in seen_files:
                    seen_files.add(path)
                    yield path
        except OSError:
            continue
    for sub in subdirs:
        yield from _walk(sub, include_hidden, seen_dirs, seen_files, cancel)
