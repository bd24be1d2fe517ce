"""`edgeret watch`: keep the library current while photos are added, moved or deleted, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from ..settings import WATCH_MAX_DELAY, WATCH_QUIET
from .common import add_common, cancellation, open_library, settings

STATUS_EVERY = 30.0  # seconds between the text progress lines of the background token preparation


def add_parser(subparsers) -> None:
    """Add the `watch` command to an argparse subparsers object."""
    p = subparsers.add_parser("watch", help="keep the library current while photos are added, moved or deleted")
    p.add_argument("--quiet", type=float, default=WATCH_QUIET,
                   help=f"seconds without changes before indexing (default {WATCH_QUIET})")
    p.add_argument("--max-delay", type=float, default=WATCH_MAX_DELAY,
                   help=f"index at least this often during long copies (default {WATCH_MAX_DELAY} s)")
    p.add_argument("--vlm", help="also prepare this re-ranker's visual tokens for every photo, in the background at "
                                 "the lowest CPU priority (registry name, installed folder, or GGUF with --mmproj)")
    p.add_argument("--mmproj", help="the re-ranker's projector GGUF, with --vlm PATH")
    add_common(p, progress=True)
    p.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    from ..watch import Watcher

    s = settings(args)
    open_library(s).close()  # a clear error now if there is no library yet

    def show(batch) -> None:
        if args.json:
            print(json.dumps({"events": batch.events, "seconds": round(batch.seconds, 3), **batch.report}), flush=True)
            return
        r = batch.report
        print(f"{time.strftime('%H:%M:%S')}  {batch.events} changes: indexed {r['indexed']}, moved {r['moved']}, "
              f"removed {r['removed']}, failed {r['failed']} ({batch.seconds:.1f}s)", flush=True)

    def failed(e: Exception) -> None:
        print(f"edgeret: watch: {e}", file=sys.stderr, flush=True)

    tokens = _preparation(args, s) if args.vlm else None

    def applied(batch) -> None:
        show(batch)
        if tokens is not None:
            tokens.wake()  # new photos: their visual tokens next

    watcher = Watcher(s.library, encoder_spec=s.encoder, threads=s.threads, quiet=args.quiet,
                      max_delay=args.max_delay, exact_below=s.exact_below, on_batch=applied, on_error=failed)
    with cancellation(signal.SIGTERM) as stop:
        try:
            watcher.start()
            if tokens is not None:
                tokens.start()
            if not args.json:
                folders = ", ".join(str(r) for r in watcher.roots) or "(no folders yet)"
                print(f"watching {folders}; Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            watcher.stop()
            if tokens is not None:
                tokens.stop()
    return 0


def _preparation(args: argparse.Namespace, s):
    """The background token preparation for `--vlm`, printing its progress (text: when a pass ends, or every
    STATUS_EVERY seconds meanwhile; JSON: every report)."""
    from ..prepare_bg import BackgroundPreparation

    last = [0.0]

    def status(st) -> None:
        if args.json:
            print(json.dumps({"visual_tokens": st.as_dict()}), flush=True)
        elif st.state != "running" or time.monotonic() - last[0] >= STATUS_EVERY:
            last[0] = time.monotonic()
            print(f"{time.strftime('%H:%M:%S')}  {st.text()}", flush=True)

    def ended(code: int, error: str) -> None:
        if code not in (0, None):
            print(f"edgeret: watch: visual-token preparation stopped: {error or f'exit code {code}'}",
                  file=sys.stderr, flush=True)

    return BackgroundPreparation(s.library, vlm=args.vlm, mmproj=args.mmproj, threads=s.threads,
                                 on_status=status, on_exit=ended)
