"""`edgeret duplicates`, `edgeret watch` and the `search --text` helper: parse, call the library, print.

cli.py wires these in with `cli_more.add_parsers(sub)`; `text_query` serves `edgeret search --text "..."`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from .config import load_settings
from .errors import LibraryBusy, UsageError
from .library import Hit, Library


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", type=Path, help="library folder (default: user data dir; env EDGERET_LIBRARY)")
    p.add_argument("--threads", type=int, help="CPU threads for inference (default: all cores)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parsers(subparsers) -> None:
    """Add the `duplicates` and `watch` commands to an argparse subparsers object."""
    p = subparsers.add_parser("duplicates", help="groups of near-duplicate photos (nothing is ever deleted)")
    p.add_argument("--threshold", type=float, default=0.95, help="cosine from which two photos group (default 0.95)")
    p.add_argument("-k", "--neighbours", type=int, default=10, help="neighbours examined per photo (default 10)")
    p.add_argument("--verify", action="store_true",
                   help="let a re-ranker judge borderline pairs (the MLLM if installed, else sv)")
    p.add_argument("--verifier", choices=["mllm", "sv"], help="which re-ranker --verify uses")
    p.add_argument("--margin", type=float, default=0.03, help="borderline band around the threshold for --verify")
    p.add_argument("--move-to", type=Path, metavar="DIR",
                   help="move every non-original into DIR (outside the library folders), writing an undo log")
    p.add_argument("--undo", type=Path, metavar="LOG", help="move the files recorded in an undo log back")
    _common(p)
    p.set_defaults(func=cmd_duplicates)

    p = subparsers.add_parser("watch", help="keep the library current while photos are added, moved or deleted")
    p.add_argument("--quiet", type=float, default=1.0, help="seconds without changes before indexing (default 1)")
    p.add_argument("--max-delay", type=float, default=10.0, help="index at least this often during long copies")
    p.add_argument("--encoder", help="encoder (default: the library's own)")
    _common(p)
    p.set_defaults(func=cmd_watch)


def add_text_args(p: argparse.ArgumentParser) -> None:
    """The `search` options text queries need (for cli.py)."""
    p.add_argument("--text", help="describe what to find instead of giving query photos, e.g. \"red bicycle\"")
    p.add_argument("--text-encoder", help="text tower: registry name or folder (default: the one pairing the library)")


def text_query(args, lib: Library, settings) -> list[Hit]:
    """Hits for `args.text` (with `args.k`, optional `args.text_encoder`) ranked by text-image cosine."""
    from .text import load_text_encoder, search_text

    encoder = load_text_encoder(lib, getattr(args, "text_encoder", None), settings.threads)
    return search_text(lib, encoder, args.text, getattr(args, "k", 20))


# duplicates ---------------------------------------------------------------------------------------------------
def cmd_duplicates(args) -> int:
    from .cli import _Bar
    from .duplicates import find_duplicates, open_verifier, undo_moves

    if args.undo:
        if args.move_to:
            raise UsageError("--undo and --move-to cannot be combined")
        report = undo_moves(args.undo)
        _print_moves(report, args.json, "restored")
        return 1 if report.skipped else 0
    if not 0.0 < args.threshold <= 1.0:
        raise UsageError("--threshold is a cosine similarity in (0, 1]")
    s = load_settings(library=args.library, threads=args.threads)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    bar = _Bar(not args.no_progress and not args.json and sys.stderr.isatty())
    t0 = time.perf_counter()
    try:
        with Library(s.library, exact_below=s.exact_below) as lib:
            verifier = open_verifier(lib, args.verifier, threads=s.threads) if args.verify else None
            try:
                groups = find_duplicates(lib, args.threshold, args.neighbours, verifier, args.margin,
                                         progress=bar, cancel=stop.is_set)
            finally:
                if verifier is not None:
                    getattr(verifier, "close", lambda: None)()
            photos, roots = lib.catalog.vector_count(), lib.roots()
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    seconds = time.perf_counter() - t0
    out = None
    if args.json:
        out = {"threshold": args.threshold, "photos": photos, "seconds": round(seconds, 3),
               "groups": [g.as_dict() for g in groups]}
        if not args.move_to:
            print(json.dumps(out))
    else:
        _print_groups(groups, photos, seconds)
    if not args.move_to:
        return 0
    return _move(args, s, groups, roots, out)


def _move(args, s, groups, roots, out: dict | None) -> int:
    from .duplicates import move_duplicates

    report = move_duplicates(groups, args.move_to, roots=roots)
    refreshed = _refresh(s)
    if out is not None:
        out["moved"] = {"log": report.log, "files": len(report.moved), "library_updated": refreshed,
                        "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}
        print(json.dumps(out))
    else:
        _print_moves(report, False, "moved")
        print(f"undo with:  edgeret duplicates --undo {report.log}")
        if not refreshed:
            print("the library is busy: it will drop the moved photos at its next `edgeret index` or watch run")
    return 1 if report.skipped else 0


def _refresh(s) -> bool:
    """Let the library forget the photos just moved out of its folders (a re-index finds them gone)."""
    try:
        with Library(s.library, writable=True, exact_below=s.exact_below) as lib:
            lib.index(threads=s.threads)
        return True
    except LibraryBusy:
        return False


def _print_groups(groups, photos: int, seconds: float) -> None:
    copies = sum(len(g.copies) for g in groups)
    print(f"{len(groups)} groups, {copies} extra copies among {photos} photos ({seconds:.1f}s)")
    for n, g in enumerate(groups, 1):
        extra = f", {g.verified} pair(s) verified" if g.verified else ""
        print(f"\ngroup {n}: {len(g.members)} photos{extra}")
        for m in g.members:
            role = "original" if m.original else f"cos {m.similarity:.3f}"
            date = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.mtime))
            print(f"  {role:<9} {m.width:>5}x{m.height:<5} {m.size:>12,} B  {date}  {m.path}")


def _print_moves(report, as_json: bool, verb: str) -> None:
    if as_json:
        print(json.dumps({verb: len(report.moved), "log": report.log, "cancelled": report.cancelled,
                          "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}))
        return
    print(f"{verb} {len(report.moved)} files (log: {report.log})")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")


# watch ----------------------------------------------------------------------------------------------------------
def cmd_watch(args) -> int:
    from .watch import Watcher

    s = load_settings(library=args.library, encoder=args.encoder, threads=args.threads)
    Library(s.library).close()  # a clear error now if there is no library yet
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    previous_term = signal.signal(signal.SIGTERM, lambda *_: stop.set())

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
    try:
        watcher.start()
        if not args.json:
            folders = ", ".join(str(r) for r in watcher.roots) or "(no folders yet)"
            print(f"watching {folders}; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        watcher.stop()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    return 0
