"""The command line: parse, call the library, print text or JSON. Nothing else lives here.

One module per command group, each with `add_parser(subparsers)`: library (index, encode-tokens, status), search,
models, eval, duplicates, watch, gui, cluster (edgeret.cluster is imported only when a cluster command runs).
Common arguments, progress bars and Ctrl-C handling live in common.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import Cancelled, EdgeretError, ModelMissing
from ..fsnames import safe_console
from . import cluster, duplicates, eval, gui, library, models, search, watch

COMMANDS = (library, search, models, eval, duplicates, watch, gui, cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeret", description="Find the same object across your photos, offline.")
    parser.add_argument("--version", action="version", version=f"edgeret {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _run_offering_downloads(args: argparse.Namespace) -> int:
    """Run the command; at a terminal, offer to pull a missing registry model once and run it again."""
    try:
        return args.func(args)
    except ModelMissing as e:
        if e.model is None or not sys.stdin.isatty() or not _ask(f"{e}\n\nDownload {e.model} now? [Y/n] "):
            raise
        missing = e.model
    models.pull_with_progress(missing)
    return args.func(args)


def _ask(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("", "y", "yes")


def main(argv: list[str] | None = None) -> int:
    """`edgeret ...`: the exit code (0 ok, 130 cancelled, an EdgeretError's own code otherwise)."""
    safe_console()  # a photo whose name is not valid UTF-8 is printed escaped, never a UnicodeEncodeError
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return _run_offering_downloads(args)
    except Cancelled:
        return 130
    except EdgeretError as e:
        print(f"edgeret: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
