"""`edgeret search`: query photos (or a text) → first-stage hits → optionally re-ranked; printed as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..box import BOX_HELP, boxed_query, parse_box
from ..decode import decode
from ..errors import DecodeError, UsageError
from ..library import Hit, Library
from ..query import run_query
from ..scan import scan
from ..settings import LAMBDA, K
from .common import add_common, count, settings
from .library import CODECS

RERANKERS = ["mllm", "sv", "mllm+sv"]


def add_parser(subparsers) -> None:
    """Add `search` to an argparse subparsers object."""
    p = subparsers.add_parser("search", help="find photos showing the same object as the query photo(s)")
    p.add_argument("queries", nargs="*", type=Path, help="query images, or folders of them")
    p.add_argument("-k", type=count, default=K,
                   help=f"how many results per query (and how many to re-rank; default {K})")
    p.add_argument("--text", help="describe what to find instead of giving query photos, e.g. \"red bicycle\"")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", help=BOX_HELP)
    p.add_argument("--text-encoder", help="text tower: registry name or folder (default: the one pairing the library)")
    add_rerank_args(p)
    add_common(p)
    p.set_defaults(func=cmd_search)


def add_rerank_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank", action="store_true", help="re-rank the top k with a re-ranker (default: the MLLM)")
    p.add_argument("--reranker", choices=RERANKERS, help="which re-ranker (implies --rerank)")
    p.add_argument("--lambda", dest="lam", type=float, default=LAMBDA,
                   help=f"final = λ·cosine + (1−λ)·P(same) (default {LAMBDA})")
    p.add_argument("--vlm", help="MLLM: registry name, installed folder, or text-model GGUF (with --mmproj)")
    p.add_argument("--mmproj", help="MLLM projector GGUF, with --vlm PATH")
    p.add_argument("--image-tokens", type=int, help="MLLM image token cap (default: one full tile)")
    p.add_argument("--prompt", choices=["object01", "yesno"], help="MLLM question: 0/1 digit or Yes/No")
    p.add_argument("--codec", choices=CODECS, default="f16", help="visual-token storage")


def open_cli_reranker(args: argparse.Namespace, lib: Library, threads: int):
    """The re-ranker the command line asked for, or None."""
    if not (args.rerank or args.reranker):
        return None
    from ..rerankers import open_reranker

    if not 0.0 <= args.lam <= 1.0:
        raise UsageError("--lambda must be between 0 and 1")
    return open_reranker(
        args.reranker or "mllm", lib, vlm=args.vlm, mmproj=args.mmproj, threads=threads,
        image_tokens=args.image_tokens, prompt=args.prompt, codec=args.codec,
    )


def text_query(args: argparse.Namespace, lib: Library, s) -> list[Hit]:
    """Hits for `args.text` (with `args.k`, optional `args.text_encoder`) ranked by text-image cosine."""
    from ..text import load_text_encoder, search_text

    encoder = load_text_encoder(lib, getattr(args, "text_encoder", None), s.threads)
    return search_text(lib, encoder, args.text, getattr(args, "k", K))


def _query_paths(items: list[Path]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        if item.is_dir():
            found = list(scan([item]))
            if not found:  # a silent exit 0 would read as "no matches"
                raise UsageError(f"query folder {item} holds no image files")
            out.extend(found)
        elif item.exists():
            out.append(item.absolute())
        else:
            raise UsageError(f"query {item} does not exist")
    return out


def cmd_search(args: argparse.Namespace) -> int:
    s = settings(args)
    if args.text:
        return _search_text(args, s)
    if not args.queries:
        raise UsageError("give query images (or folders of them), or --text")
    queries = _query_paths(args.queries)
    box = parse_box(args.box) if args.box else None  # malformed: an error before anything loads
    failed = 0
    with Library(s.library, exact_below=s.exact_below) as lib:
        encoder = lib.load_encoder(s.encoder, s.threads)
        reranker = open_cli_reranker(args, lib, s.threads)
        try:
            for q in queries:
                try:  # the re-ranker looks at more pixels than the encoder needs, and so does a box's region
                    full = reranker or box
                    image = decode(q, min_side=None if full else encoder.preprocess.min_decode_side)
                except DecodeError as e:
                    print(f"edgeret: cannot read query {q}: {e}", file=sys.stderr)
                    failed += 1
                    continue
                region, rerank_query, box = boxed_query(image, box)
                hits = lib.search_images([region], encoder, args.k)[0]
                *_, results = run_query(hits, rerank_query, reranker, args.lam)
                _print_results(q, results, reranker, args.json, box)
        finally:
            if reranker is not None:
                reranker.close()
    return 1 if failed else 0


def _search_text(args: argparse.Namespace, s) -> int:
    if args.queries:
        raise UsageError("--text searches by text alone: no query images")
    if args.box:
        raise UsageError("--box restricts a query photo: a text query has none")
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


def _print_results(query: Path, results, reranker, as_json: bool, box=None) -> None:
    name = reranker.name if reranker else None
    if as_json:
        rows = [r.as_dict(name) for r in results]
        out = {"query": str(query), **({"box": box.as_list()} if box else {}), "results": rows}
        print(json.dumps(out), flush=True)
        return
    print(f"{query}" + (f" [box {','.join(map(str, box.as_list()))}]:" if box else ":"))
    for rank, r in enumerate(results, 1):
        if reranker is None:
            print(f"  {rank:3d}  {r.final:.4f}  {r.path}")
        else:
            p = "  -  " if r.p_same is None or r.p_same != r.p_same else f"{r.p_same:.3f}"
            print(f"  {rank:3d}  final {r.final:.4f}  cos {r.first_stage:.4f}  P(same) {p}  {r.path}")
