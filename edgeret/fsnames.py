"""File names as the operating system gives them: bytes on Linux, which need not be valid UTF-8.

Python hands such names over as `str` with the undecodable bytes as lone surrogates (PEP 383). SQLite TEXT must be
valid UTF-8, so the catalog stores a name that is valid UTF-8 as TEXT and any other name as a BLOB of its raw bytes:
lossless, and no valid name changes its form. For people, `display` shows the raw bytes as `\\xNN` escapes.
"""

from __future__ import annotations

import codecs
import os
import sys

ESCAPE = "edgeret.fsname"  # an encoding error handler: a name's raw bytes as \xNN, anything else as \uNNNN


def _escape(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return "".join(_escape_char(ord(c)) for c in err.object[err.start:err.end]), err.end


def _escape_char(code: int) -> str:
    if 0xDC80 <= code <= 0xDCFF:  # PEP 383 keeps an undecodable byte b as the lone surrogate U+DC00 + b
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


codecs.register_error(ESCAPE, _escape)


def to_sql(path: str) -> str | bytes:
    """The catalog form of a path: TEXT when it is valid UTF-8, else the raw bytes (stored as a BLOB)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def from_sql(value: str | bytes) -> str:
    """The inverse of `to_sql`: the `str` Python's os functions accept for this file."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def prefix_bytes(folder: str) -> bytes:
    """`folder/` as raw bytes, to match TEXT and BLOB paths alike with `substr(CAST(path AS BLOB), 1, n)`."""
    return os.fsencode(folder.rstrip("/") + "/")


def display(path: object) -> str:
    """A printable form of a path: valid UTF-8 always, undecodable bytes shown as `\\xNN`."""
    return str(path).encode("utf-8", ESCAPE).decode("utf-8")


def safe_console() -> None:
    """Make stdout/stderr print any path: what their encoding cannot hold is escaped as `display` does."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=ESCAPE)
