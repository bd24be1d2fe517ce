"""The command line: parse, call the library, print text or JSON. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from . import __version__, cli_eval, cli_gui, cli_models, cli_more
from .config import load_settings
from .decode import decode
from .errors import Cancelled, DecodeError, EdgeretError, ModelMissing, UsageError
from .library import Library
from .query import run_query
from .scan import scan


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", type=Path, help="library folder (default: user data dir; env EDGERET_LIBRARY)")
    p.add_argument("--encoder", help="encoder: a registry name or a model folder (default: the library's own)")
    p.add_argument("--threads", type=int, help="CPU threads for inference (default: all cores)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeret", description="Find the same object across your photos, offline.")
    parser.add_argument("--version", action="version", version=f"edgeret {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index photo folders (again: only new or changed photos)")
    p.add_argument("folders", nargs="*", type=Path, help="folders to add; none: refresh the library's folders")
    p.add_argument("--reindex", action="store_true", help="re-encode every photo (needed to change the encoder)")
    p.add_argument("--batch-size", type=int, help="images per inference batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=cmd_index)

    p.add_argument("--vlm", help="also store each photo's visual tokens for this re-ranker (name or GGUF path)")
    p.add_argument("--mmproj", help="the re-ranker's projector GGUF, with --vlm PATH")
    p.add_argument("--image-tokens", type=int, help="image token cap of the re-ranker")

    p = sub.add_parser("search", help="find photos showing the same object as the query photo(s)")
    p.add_argument("queries", nargs="*", type=Path, help="query images, or folders of them")
    p.add_argument("-k", type=int, default=20, help="how many results per query (and how many to re-rank)")
    cli_more.add_text_args(p)
    add_rerank_args(p)
    _common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("encode-tokens", help="store the re-ranker's visual tokens of every indexed photo")
    p.add_argument("--vlm", help="re-ranker: registry name, installed folder, or text-model GGUF (with --mmproj)")
    p.add_argument("--mmproj", help="the re-ranker's projector GGUF, with --vlm PATH")
    p.add_argument("--image-tokens", type=int, help="image token cap (default: one full tile)")
    p.add_argument("--codec", choices=["f16", "int8", "pool2", "f32"], default="f16", help="token storage")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=cmd_encode_tokens)

    p = sub.add_parser("status", help="what the library holds")
    _common(p)
    p.set_defaults(func=cmd_status)

    cli_models.add_parser(sub)
    cli_eval.add_parser(sub)
    cli_more.add_parsers(sub)
    cli_gui.add_parser(sub)
    return parser


def add_rerank_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank", action="store_true", help="re-rank the top k with a re-ranker (default: the MLLM)")
    p.add_argument("--reranker", choices=["mllm", "sv", "mllm+sv"], help="which re-ranker (implies --rerank)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.5, help="final = λ·cosine + (1−λ)·P(same)")
    p.add_argument("--vlm", help="MLLM: registry name, installed folder, or text-model GGUF (with --mmproj)")
    p.add_argument("--mmproj", help="MLLM projector GGUF, with --vlm PATH")
    p.add_argument("--image-tokens", type=int, help="MLLM image token cap (default: one full tile)")
    p.add_argument("--prompt", choices=["object01", "yesno"], help="MLLM question: 0/1 digit or Yes/No")
    p.add_argument("--codec", choices=["f16", "int8", "pool2", "f32"], default="f16", help="visual-token storage")


def open_cli_reranker(args, lib: Library, threads: int):
    """The re-ranker the command line asked for, or None."""
    if not (args.rerank or args.reranker):
        return None
    from .rerankers import open_reranker

    if not 0.0 <= args.lam <= 1.0:
        raise UsageError("--lambda must be between 0 and 1")
    return open_reranker(
        args.reranker or "mllm", lib, vlm=args.vlm, mmproj=args.mmproj, threads=threads,
        image_tokens=args.image_tokens, prompt=args.prompt, codec=args.codec,
    )


def _settings(args):
    return load_settings(library=args.library, encoder=args.encoder, threads=args.threads)


class _Bar:
    """A tqdm bar opened on the first progress report, when the total is known."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, done: int, total: int, path: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", dynamic_ncols=True, file=sys.stderr)
        self.bar.n = done
        self.bar.set_postfix_str(Path(path).name[-30:], refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_index(args) -> int:
    s = _settings(args)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: keep what was committed, then stop
    bar = _Bar(not args.no_progress and not args.json and sys.stderr.isatty())
    try:
        with Library(s.library, writable=True, exact_below=s.exact_below) as lib:
            report = lib.index(
                args.folders, encoder_spec=s.encoder, reindex=args.reindex, threads=s.threads,
                batch_size=args.batch_size or s.batch_size, progress=bar, cancel=stop.is_set,
            )
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        _print_report(report)
    if report.cancelled:
        return 130
    return _encode_tokens(args, s) if args.vlm else 0


def cmd_encode_tokens(args) -> int:
    s = _settings(args)
    return _encode_tokens(args, s)


def _encode_tokens(args, s) -> int:
    from .rerankers import open_mllm

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    bar = _Bar(not getattr(args, "no_progress", False) and not args.json and sys.stderr.isatty())
    with Library(s.library, writable=True, exact_below=s.exact_below) as lib:
        rr = open_mllm(lib, vlm=args.vlm, mmproj=args.mmproj, threads=s.threads,
                       image_tokens=args.image_tokens, codec=getattr(args, "codec", "f16"))
        try:
            n = rr.encode_missing(lib, progress=bar, cancel=stop.is_set)
            stored = len(rr.store)
        finally:
            bar.close()
            rr.close()
            signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps({"visual_tokens_encoded": n, "visual_tokens_stored": stored}))
    else:
        print(f"visual tokens: encoded {n}, stored {stored}")
    return 130 if stop.is_set() else 0


def _print_report(report) -> None:
    d = report.as_dict()
    state = "cancelled" if report.cancelled else "done"
    print(
        f"{state} in {d['seconds']:.1f}s: indexed {d['indexed']}, unchanged {d['unchanged']}, "
        f"moved {d['moved']}, removed {d['removed']}, failed {d['failed']}"
    )
    for r in d["missing_roots"]:
        print(f"  folder not found (kept as it was): {r}")
    for f in d["failures"][:20]:
        print(f"  failed: {f['path']}: {f['reason']}")
    if d["failed"] > 20:
        print(f"  … and {d['failed'] - 20} more (edgeret status lists them all)")


def _query_paths(items: list[Path]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        if item.is_dir():
            out.extend(scan([item]))
        elif item.exists():
            out.append(item.absolute())
        else:
            raise UsageError(f"query {item} does not exist")
    return out


def cmd_search(args) -> int:
    s = _settings(args)
    if args.text:
        return _search_text(args, s)
    if not args.queries:
        raise UsageError("give query images (or folders of them), or --text")
    queries = _query_paths(args.queries)
    failed = 0
    with Library(s.library, exact_below=s.exact_below) as lib:
        encoder = lib.load_encoder(s.encoder, s.threads)
        reranker = open_cli_reranker(args, lib, s.threads)
        try:
            for q in queries:
                try:  # the re-ranker looks at more pixels than the encoder needs
                    image = decode(q, min_side=None if reranker else encoder.preprocess.min_decode_side)
                except DecodeError as e:
                    print(f"edgeret: cannot read query {q}: {e}", file=sys.stderr)
                    failed += 1
                    continue
                hits = lib.search_images([image], encoder, args.k)[0]
                *_, results = run_query(hits, image, reranker, args.lam)
                _print_results(q, results, reranker, args.json)
        finally:
            if reranker is not None:
                reranker.close()
    return 1 if failed else 0


def _search_text(args, s) -> int:
    from .cli_more import text_query

    if args.queries:
        raise UsageError("--text searches by text alone: no query images")
    if args.reranker not in (None, "mllm"):
        raise UsageError("text queries are re-ranked by the MLLM only: spatial verification needs a query photo")
    with Library(s.library, exact_below=s.exact_below) as lib:
        hits = text_query(args, lib, s)
        reranker = open_cli_reranker(args, lib, s.threads)
        try:
            *_, results = run_query(hits, args.text, reranker, args.lam)
        finally:
            if reranker is not None:
                reranker.close()
    _print_results(Path(args.text), results, reranker, args.json)
    return 0


def _print_results(query: Path, results, reranker, as_json: bool) -> None:
    name = reranker.name if reranker else None
    if as_json:
        rows = [r.as_dict(name) for r in results]
        print(json.dumps({"query": str(query), "results": rows}), flush=True)
        return
    print(f"{query}:")
    for rank, r in enumerate(results, 1):
        if reranker is None:
            print(f"  {rank:3d}  {r.final:.4f}  {r.path}")
        else:
            p = "  -  " if r.p_same is None or r.p_same != r.p_same else f"{r.p_same:.3f}"
            print(f"  {rank:3d}  final {r.final:.4f}  cos {r.first_stage:.4f}  P(same) {p}  {r.path}")


def cmd_status(args) -> int:
    s = _settings(args)
    with Library(s.library, exact_below=s.exact_below) as lib:
        st = lib.status()
    if args.json:
        print(json.dumps(st))
        return 0
    print(f"library  {st['library']}")
    print(f"encoder  {st['encoder']}")
    print(f"indexed  {st['indexed']}   failed {st['failed']}   pending {st['pending']}")
    print(f"index    {st['index']['kind']}, {st['index']['size']} vectors, {st['index']['bytes_on_disk']:,} bytes")
    for r in st["roots"]:
        print(f"root     {r}")
    for f in st["failures"]:
        print(f"failed   {f['path']}: {f['reason']}")
    return 0


def _run_offering_downloads(args) -> int:
    """Run the command; at a terminal, offer to pull a missing registry model once and run it again."""
    try:
        return args.func(args)
    except ModelMissing as e:
        if e.model is None or not sys.stdin.isatty() or not _ask(f"{e}\n\nDownload {e.model} now? [Y/n] "):
            raise
        missing = e.model
    from .cli_models import pull_with_progress

    pull_with_progress(missing)
    return args.func(args)


def _ask(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("", "y", "yes")


def main(argv: list[str] | None = None) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
