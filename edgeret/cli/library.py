"""`edgeret index`, `edgeret encode-tokens` and `edgeret status`: build the library and say what it holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..prepare import ORDERS
from ..regions import SETTINGS
from ..settings import PREPARE_ORDER
from .common import add_common, add_progress, count, interruptible, open_library, print_status, settings, wants_progress

CODECS = ["f16", "int8", "pool2", "f32"]


def add_parser(subparsers) -> None:
    """Add `index`, `encode-tokens` and `status` to an argparse subparsers object."""
    p = subparsers.add_parser("index", help="index photo folders (again: only new or changed photos)")
    p.add_argument("folders", nargs="*", type=Path, help="folders to add; none: refresh the library's folders")
    p.add_argument("--reindex", action="store_true", help="re-encode every photo (needed to change the encoder)")
    p.add_argument("--regions", choices=tuple(SETTINGS),
                   help="also store vectors of crops of each photo, so small objects in busy photos are found: "
                        "grid (6-8 crops), dense (~20), off, or query (only the query is split: no index cost); "
                        "recorded in the library, a change needs --reindex (default for a new library: grid for "
                        "any-size encoders such as mnv2-gem, query for CLIP)")
    p.add_argument("--batch-size", type=int, help="images per inference batch")
    add_progress(p)
    add_common(p)
    p.add_argument("--vlm", help="also store each photo's visual tokens for this re-ranker (name or GGUF path)")
    p.add_argument("--mmproj", help="the re-ranker's projector GGUF, with --vlm PATH")
    p.add_argument("--image-tokens", type=int, help="image token cap of the re-ranker")
    p.set_defaults(func=cmd_index)

    p = subparsers.add_parser("encode-tokens", help="store the re-ranker's visual tokens of every indexed photo")
    p.add_argument("--vlm", help="re-ranker: registry name, installed folder, or text-model GGUF (with --mmproj)")
    p.add_argument("--mmproj", help="the re-ranker's projector GGUF, with --vlm PATH")
    p.add_argument("--image-tokens", type=int, help="image token cap (default: one full tile)")
    p.add_argument("--codec", choices=CODECS, default="f16", help="token storage")
    p.add_argument("--limit", type=count, help="encode at most this many photos this run (the rest: next run)")
    p.add_argument("--order", choices=ORDERS, default=PREPARE_ORDER,
                   help="which photos first: the ones most often in other photos' top-k (neighbours, default), "
                        "by path, or newest first")
    add_progress(p)
    add_common(p)
    p.set_defaults(func=cmd_encode_tokens)

    p = subparsers.add_parser("status", help="what the library holds")
    add_common(p)
    p.set_defaults(func=cmd_status)


def cmd_index(args: argparse.Namespace) -> int:
    s = settings(args)
    with (  # Ctrl-C: keep what was committed, then stop
        interruptible(wants_progress(args)) as (bar, cancel),
        open_library(s, writable=True) as lib,
    ):
        report = lib.index(
            args.folders, encoder_spec=s.encoder, reindex=args.reindex, regions=args.regions, threads=s.threads,
            batch_size=args.batch_size or s.batch_size, progress=bar, cancel=cancel,
        )
    print_report(report, args.json)
    if report.cancelled:
        return 130
    return _encode_tokens(args, s) if args.vlm else 0


def cmd_encode_tokens(args: argparse.Namespace) -> int:
    return _encode_tokens(args, settings(args))


def _encode_tokens(args: argparse.Namespace, s) -> int:
    """Store the visual tokens of the photos that lack them; Ctrl-C or a kill loses only the photo in flight."""
    from ..prepare import prepare
    from ..rerankers import open_mllm

    last: list = []

    def show(status) -> None:
        last[:] = [status]
        bar.status(status.ready, status.total, status.text())

    with (
        interruptible(wants_progress(args)) as (bar, cancel),
        open_library(s, writable=True) as lib,
    ):
        rr = open_mllm(lib, vlm=args.vlm, mmproj=args.mmproj, threads=s.threads,
                       image_tokens=args.image_tokens, codec=getattr(args, "codec", "f16"))
        try:
            n = prepare(lib, rr, order=getattr(args, "order", PREPARE_ORDER), limit=getattr(args, "limit", None),
                        progress=show, cancel=cancel)
            stored = len(rr.store)
        finally:
            rr.close()
        cancelled = cancel()
    total = last[0].total if last else stored
    if args.json:
        print(json.dumps({"visual_tokens_encoded": n, "visual_tokens_stored": stored, "photos": total}))
    else:
        print(f"visual tokens: encoded {n}, stored {stored}; {last[0].text() if last else ''}".rstrip("; "))
    return 130 if cancelled else 0


def print_report(report, as_json: bool) -> None:
    """An IndexReport (local or cluster) as one JSON line, or a summary line and its first failures."""
    d = report.as_dict()
    if as_json:
        print(json.dumps(d))
        return
    state = "cancelled" if report.cancelled else "done"
    print(
        f"{state} in {d['seconds']:.1f}s: indexed {d['indexed']}, unchanged {d['unchanged']}, "
        f"moved {d['moved']}, removed {d['removed']}, failed {d['failed']}"
        + (f", picture hashes added {d['pictures']}" if d.get("pictures") else "")
    )
    for r in d["missing_roots"]:
        print(f"  folder not found (kept as it was): {r}")
    for f in d["failures"][:20]:
        print(f"  failed: {f['path']}: {f['reason']}")
    if d["failed"] > 20:
        print(f"  … and {d['failed'] - 20} more (edgeret status lists them all)")


def cmd_status(args: argparse.Namespace) -> int:
    s = settings(args)
    with open_library(s) as lib:
        st = lib.status()
    return print_status(st, args.json, [
        ("library", st["library"]),
        ("encoder", st["encoder"]),
        ("indexed", f"{st['indexed']}   failed {st['failed']}   pending {st['pending']}"),
        ("regions", f"{st['regions']}, {st['vectors_per_photo'] or 0:g} vectors per photo"),
        ("pictures", f"{st['pictures']} of {st['photos']} photos have a picture hash (for duplicates)"
                     + ("; the next `edgeret index` adds the rest, without re-encoding"
                        if st["pictures"] < st["photos"] else "")),
        ("index", f"{st['index']['kind']}, {st['index']['size']} vectors, {st['index']['bytes_on_disk']:,} bytes"),
        *(("root", r) for r in st["roots"]),
    ])
