"""`edgeret gui`: the command that opens the desktop app; PySide6 is imported only when it runs."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .common import add_common, settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `gui` command to an argparse subparsers object."""
    p = subparsers.add_parser("gui", help="open the desktop app (needs the [gui] extra: PySide6)")
    add_common(p, json=False)
    p.add_argument("--text-encoder", help="text tower for text search (default: the one pairing the library)")
    p.set_defaults(func=cmd_gui)
    return p


def cmd_gui(args) -> int:
    try:
        from gui.app import run
    except ImportError as e:
        raise UsageError(f"the desktop app needs PySide6 ({e}); install it with: pip install 'edgeret[gui]'") from None
    return run(settings(args), text_encoder=args.text_encoder)
