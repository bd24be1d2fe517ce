"""`edgeret models list|pull|import|verify|remove`: the command-line face of edgeret.models (printing lives here)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import models
from ..errors import ModelError
from .common import add_progress, interruptible


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `models` command to an argparse subparsers object."""
    p = subparsers.add_parser("models", help="list, download, import and verify models")
    sub = p.add_subparsers(dest="models_command", required=True)

    q = sub.add_parser("list", help="known models, their size and licence, and whether they are installed")
    q.add_argument("--json", action="store_true", help="print one JSON array")
    q.set_defaults(func=cmd_list)

    q = sub.add_parser("pull", help="download, verify and install a model (resumes interrupted downloads)")
    q.add_argument("name", help="registry name (see `edgeret models list`)")
    q.add_argument("--trust-unverified", action="store_true", help="accept files that have no published sha256")
    q.add_argument("--force", action="store_true", help="download again even if installed")
    add_progress(q)
    q.set_defaults(func=cmd_pull)

    q = sub.add_parser("import", help="install model files copied from another machine (no network needed)")
    q.add_argument("path", help="a folder holding the model's files, or one of the files")
    q.add_argument("--name", help="registry name, when the files fit several models")
    q.add_argument("--trust-unverified", action="store_true", help="accept files that have no published sha256")
    add_progress(q)
    q.set_defaults(func=cmd_import)

    q = sub.add_parser("verify", help="re-check installed models: size, sha256 and file headers")
    q.add_argument("names", nargs="*", help="models to check (default: all installed)")
    q.add_argument("--json", action="store_true", help="print one JSON array")
    add_progress(q)
    q.set_defaults(func=cmd_verify)

    q = sub.add_parser("remove", help="uninstall a model")
    q.add_argument("name")
    q.set_defaults(func=cmd_remove)
    return p


def _human(n: float) -> str:
    if not n:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def cmd_list(args) -> int:
    rows = models.list_models()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':20} {'role':12} {'size':>9}  {'installed':9}  {'licence':28} description")
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "")
        mark = "yes" if r["installed"] else "no"
        size = _human(r["size"]) + ("" if r["verified"] else "!")
        print(f"{name:20} {r['role']:12} {size:>9}  {mark:9}  {r['licence'][:28]:28} {r['description']}")
    print(f"\n* default   ! no published sha256 (needs --trust-unverified)   models folder: {models.models_dir()}")
    return 0


def _run_with_bar(enabled: bool, job) -> Any:
    """Run job(progress, cancel) with a byte-counting bar and Ctrl-C mapped to a clean cancel."""
    with interruptible(enabled and sys.stderr.isatty()) as (bar, cancel):
        return job(bar.bytes, cancel)


def cmd_pull(args) -> int:
    info = models.get(args.name)
    if info.installed() and not args.force:
        print(f"{args.name} is already installed in {info.folder()}")
        return 0
    path = _run_with_bar(
        not args.no_progress,
        lambda bar, cancel: models.pull(
            args.name, trust_unverified=args.trust_unverified, progress=bar, cancel=cancel, force=args.force
        ),
    )
    print(f"installed {args.name} in {path}")
    return 0


def pull_with_progress(name: str) -> None:
    """Pull one registry model with a progress bar (the CLI's first-run offer)."""
    path = _run_with_bar(True, lambda bar, cancel: models.pull(name, progress=bar, cancel=cancel))
    print(f"installed {name} in {path}", file=sys.stderr)


def cmd_import(args) -> int:
    path = _run_with_bar(
        not args.no_progress,
        lambda bar, cancel: models.import_model(
            args.path, args.name, trust_unverified=args.trust_unverified, progress=bar, cancel=cancel
        ),
    )
    print(f"imported {path.name} into {path}")
    return 0


def cmd_verify(args) -> int:
    results = _run_with_bar(
        not args.no_progress and not args.json,
        lambda bar, cancel: models.verify(args.names or None, progress=bar, cancel=cancel),
    )
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
    elif not results:
        print("no models installed")
    for r in [] if args.json else results:
        print(f"{'ok' if r.ok else 'BAD':4} {r.name}  {r.path}")
        for problem in r.problems:
            print(f"       {problem}")
    return 0 if all(r.ok for r in results) else ModelError.exit_code


def cmd_remove(args) -> int:
    removed = models.remove(args.name)
    print(f"removed {args.name}" if removed else f"{args.name} was not installed")
    return 0
