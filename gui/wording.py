"""What the app says: sizes, dates, and library messages reworded for a desktop user (no terminal commands)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlparse

# A sentence (or clause after ";") that tells the user to run a command: fine for the CLI, useless in the app.
_COMMAND = re.compile(r"`[^`]*`|\bedgeret (models|index|search|status|gui)\b|--[a-z][a-z-]+")
_SENTENCE = re.compile(r"[^.;:\n]*(?:[.;:](?=\s|$)|\n|$)")


def size(n: float) -> str:
    """Bytes for people: GB with a decimal, MB, and kB below a megabyte (a photo's file, not "0 MB")."""
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def date(value: dt.datetime | None) -> str:
    return value.strftime("%-d %b %Y") if value else ""


def for_desktop(message: str) -> str:
    """`message` without the sentences that name CLI commands or flags (the full text goes to the log)."""
    kept = [s for s in _SENTENCE.findall(message) if s.strip() and not _COMMAND.search(s)]
    text = " ".join(s.strip() for s in kept).strip()
    text = re.sub(r"\s*[;:]$", ".", text)
    return text or "Something went wrong (see Help → Show log)."


def breakable(text: str) -> str:
    """Let word wrap break long paths and URLs after / and _ (a zero-width space), so they never widen a window."""
    return re.sub(r"([/_\\])(?=\S)", "\\1\u200b", text)


def host(url: str) -> str:
    return urlparse(url).netloc or url
