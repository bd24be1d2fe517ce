"""`edgeret watch`: keep the library current while photos are added, moved or deleted, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from ..library import Library
from ..settings import WATCH_MAX_DELAY, WATCH_QUIET
from .common import add_common, cancellation, settings


def add_parser(subparsers) -> None:
    """Add the `watch` command to an argparse subparsers object."""
    p = subparsers.add_parser("watch", help="keep the library current while photos are added, moved or deleted")
    p.add_argument("--quiet", type=float, default=WATCH_QUIET,
                   help=f"seconds without changes before indexing (default {WATCH_QUIET})")
    p.add_argument("--max-delay", type=float, default=WATCH_MAX_DELAY,
                   help=f"index at least this often during long copies (default {WATCH_MAX_DELAY} s)")
    add_common(p, progress=True)
    p.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    from ..watch import Watcher

    s = settings(args)
    Library(s.library).close()  # a clear error now if there is no library yet

    def show(batch) -> None:
        if args.json:
            print(json.dumps({"events": batch.events, "seconds": round(batch.seconds, 3), **batch.report}), flush=True)
            return
        r = batch.report
        print(f"{time.strftime('%H:%M:%S')}  {batch.events} changes: indexed {r['indexed']}, moved {r['moved']}, "
              f"removed {r['removed']}, failed {r['failed']} ({batch.seconds:.1f}s)", flush=True)

    def failed(e: Exception) -> None:
        print(f"edgeret: watch: {e}", file=sys.stderr, flush=True)

    watcher = Watcher(s.library, encoder_spec=s.encoder, threads=s.threads, quiet=args.quiet,
                      max_delay=args.max_delay, exact_below=s.exact_below, on_batch=show, on_error=failed)
    with cancellation(signal.SIGTERM) as stop:
        try:
            watcher.start()
            if not args.json:
                folders = ", ".join(str(r) for r in watcher.roots) or "(no folders yet)"
                print(f"watching {folders}; Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            watcher.stop()
    return 0
