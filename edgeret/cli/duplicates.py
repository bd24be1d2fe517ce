"""`edgeret duplicates`: groups of near-duplicate photos, moving the copies out with an undo log, and the undo."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import LibraryBusy, UsageError
from ..settings import DUPLICATE_K, DUPLICATE_MARGIN, DUPLICATE_THRESHOLD
from .common import add_common, count, interruptible, open_library, settings, wants_progress


def add_parser(subparsers) -> None:
    """Add the `duplicates` command to an argparse subparsers object."""
    p = subparsers.add_parser(
        "duplicates", help="identical files, the same picture in other versions, and similar shots (nothing is "
        "ever deleted)")
    p.add_argument("--threshold", type=float, default=DUPLICATE_THRESHOLD,
                   help=f"cosine from which two photos count as similar shots (default {DUPLICATE_THRESHOLD}); "
                   "identical files and the same picture are found whatever their cosine")
    p.add_argument("-k", "--neighbours", type=count, default=DUPLICATE_K,
                   help=f"neighbours examined per photo (default {DUPLICATE_K})")
    p.add_argument("--verify", action="store_true",
                   help="let a re-ranker judge borderline pairs (the MLLM if installed, else sv)")
    p.add_argument("--verifier", choices=["mllm", "sv"], help="which re-ranker --verify uses")
    p.add_argument("--margin", type=float, default=DUPLICATE_MARGIN,
                   help=f"borderline band around the threshold for --verify (default {DUPLICATE_MARGIN})")
    p.add_argument("--move-to", type=Path, metavar="DIR",
                   help="move the extra copies of identical files and of the same picture into DIR (outside the "
                   "library folders), writing an undo log; similar shots are listed, never moved")
    p.add_argument("--undo", type=Path, metavar="LOG", help="move the files recorded in an undo log back")
    add_common(p, encoder=False, progress=True)
    p.set_defaults(func=cmd_duplicates)


def cmd_duplicates(args) -> int:
    from ..duplicates import find_duplicates, open_verifier, undo_moves

    if args.undo:
        if args.move_to:
            raise UsageError("--undo and --move-to cannot be combined")
        report = undo_moves(args.undo)
        _print_moves(report, args.json, "restored")
        return 1 if report.skipped else 0
    if not 0.0 < args.threshold <= 1.0:
        raise UsageError("--threshold is a cosine similarity in (0, 1]")
    s = settings(args)
    t0 = time.perf_counter()
    with interruptible(wants_progress(args)) as (bar, cancel), open_library(s) as lib:
        verifier = open_verifier(lib, args.verifier, threads=s.threads) if args.verify else None
        try:
            groups = find_duplicates(lib, args.threshold, args.neighbours, verifier, args.margin,
                                     progress=bar, cancel=cancel)
        finally:
            if verifier is not None:
                getattr(verifier, "close", lambda: None)()
        photos, roots = lib.catalog.vector_count(), lib.roots()
    seconds = time.perf_counter() - t0
    out = None
    if args.json:
        out = groups_json(args.threshold, photos, seconds, groups)
        if not args.move_to:
            print(json.dumps(out))
    else:
        print_groups(groups, photos, seconds)
    if not args.move_to:
        return 0
    return _move(args, s, groups, roots, out)


def _move(args, s, groups, roots, out: dict | None) -> int:
    from ..duplicates import COPY_KINDS, move_duplicates

    report = move_duplicates([g for g in groups if g.kind in COPY_KINDS], args.move_to, roots=roots)
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
        with open_library(s, writable=True) as lib:
            lib.index(threads=s.threads)
        return True
    except LibraryBusy:
        return False


def groups_json(threshold: float, photos: int, seconds: float, groups) -> dict:
    """The --json form of the groups (local or cluster); `--move-to` adds what it moved."""
    from ..duplicates import KINDS

    return {"threshold": threshold, "photos": photos, "seconds": round(seconds, 3),
            "kinds": {kind: sum(g.kind == kind for g in groups) for kind in KINDS},
            "groups": [g.as_dict() for g in groups]}


TITLES = {"identical": "identical files", "same_picture": "the same picture", "similar": "similar shots"}


WORDS = dict(original="original", identical="same file", similarity="cos {0:.3f}",
             picture="hash {0}/64, thumb {1:.3f}", p_same="P {0:.2f}", sep=", ")


def evidence(m) -> str:
    """A member's evidence against its group's original, in a few words."""
    from ..duplicates import EvidenceWords  # the module is loaded already: m is one of its Members

    return m.evidence(EvidenceWords(**WORDS))


def print_groups(groups, photos: int, seconds: float) -> None:
    counts = {kind: sum(g.kind == kind for g in groups) for kind in TITLES}
    copies = sum(len(g.copies) for g in groups if g.kind != "similar")
    print(f"{counts['identical']} groups of identical files, {counts['same_picture']} of the same picture "
          f"({copies} extra copies), {counts['similar']} of similar shots, among {photos} photos ({seconds:.1f}s)")
    for n, g in enumerate(groups, 1):
        extra = f", {g.verified} verified by the re-ranker" if g.verified else ""
        why = f"; original: {g.why}" if g.why else ""
        print(f"\ngroup {n}: {TITLES.get(g.kind, g.kind)}, {len(g.members)} photos{extra}{why}")
        for m in g.members:
            date = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.mtime))
            print(f"  {evidence(m):<34} {m.width:>5}x{m.height:<5} {m.size:>12,} B  {date}  {m.path}")


def _print_moves(report, as_json: bool, verb: str) -> None:
    if as_json:
        print(json.dumps({verb: len(report.moved), "log": report.log, "cancelled": report.cancelled,
                          "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}))
        return
    print(f"{verb} {len(report.moved)} files (log: {report.log})")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")
