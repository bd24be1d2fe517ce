"""What the app says about models: what each is for, how big, and — when a download fails — what to do next, in
plain words (no terminal commands). The library's own message goes into Details and the log."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from edgeret import models
from edgeret.errors import Cancelled, EdgeretError, NetworkError
from edgeret.text import text_towers_for

from .wording import for_desktop, host, size

PURPOSE = {
    "encoder": "Image encoder: needed to index your photos and to search them",
    "reranker": "Re-ranker (multimodal LLM): checks each result — is it the same object?",
    "text-encoder": "Text search: find photos by a description",
}


@dataclass(frozen=True)
class Outcome:
    """A failed or stopped install, said plainly: `text` for the message, `details` for the Details area."""

    text: str
    details: str
    offline: bool = False
    resumable: bool = False


def is_installed(name: str | None) -> bool:
    """Whether the registry model `name` is installed (False for a name the registry does not know)."""
    try:
        return name is not None and models.get(name).installed()
    except EdgeretError:
        return False


def size_of(name: str) -> int:
    """The registry model's download size in bytes (0 for a name the registry does not know)."""
    try:
        return models.get(name).size
    except EdgeretError:
        return 0


def is_registry(name: str | None) -> bool:
    """Whether `name` is a registry model (else a folder or file path, or nothing)."""
    try:
        return name is not None and models.get(name) is not None
    except EdgeretError:
        return False


def default_names() -> list[str]:
    """The models the first-start page offers: the default encoder, re-ranker and the text tower pairing it."""
    names = []
    for role in ("encoder", "reranker"):
        with contextlib.suppress(EdgeretError):
            names.append(models.default_model(role).name)
    if names and (towers := text_towers_for(names[0], _registry())):
        names.append(towers[0].name)
    return names


def _registry() -> dict:
    try:
        return models.load_registry()
    except EdgeretError:
        return {}


def files_to_copy(names: list[str]) -> str:
    """Each model's files with their size and where to download them: what to copy from another computer."""
    lines = []
    for name in names:
        try:
            info = models.get(name)
        except EdgeretError:
            continue
        lines.append(f"{name} ({size(info.size)}, {info.licence}):")
        lines += [f"  {f.name} ({size(f.size)}) from {info.url(f)}" for f in info.files]
    return "\n".join(lines)


def outcome(error: BaseException, names: list[str]) -> Outcome:
    """The plain message for a download that did not finish."""
    kept = sum(models.partial_bytes(n) for n in names)
    if isinstance(error, Cancelled):
        return Outcome(f"Download stopped. {size(kept)} are kept: “Resume download” continues from there.",
                       "", resumable=True)
    if isinstance(error, NetworkError) and error.offline:
        return Outcome(
            f"No network connection: nothing answered at {host(error.url)}. On a computer with internet, download "
            "the files listed under Details, copy them to this one (a USB stick will do), then choose "
            "“Import files…” and pick the folder holding them.",
            files_to_copy(names) + f"\n\n{for_desktop(str(error))}", offline=True)
    if isinstance(error, NetworkError):
        return Outcome(
            f"The download of {error.model} stopped: the connection was cut or stalled. {size(kept)} are kept: "
            "“Resume download” continues from there.", for_desktop(str(error)), resumable=True)
    return Outcome(f"The download did not work: {for_desktop(str(error))} Try again later, or import the files "
                   "copied from another computer (“Import files…”).",
                   for_desktop(str(error)) + "\n\n" + files_to_copy(names))
