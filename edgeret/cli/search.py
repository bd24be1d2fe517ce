"""`edgeret search`: query photos (or a text) → first-stage hits → optionally re-ranked; printed as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..box import BOX_HELP, parse_box
from ..errors import DecodeError, UsageError
from ..scan import scan
from ..session import Query, RerankSpec, Session
from ..settings import LAMBDA, RERANKER, K
from .common import add_common, add_mllm_args, count, settings
from .library import CODECS

RERANKERS = ["mllm", "sv", "mllm+sv"]  # edgeret.rerankers.open_reranker names


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
    add_mllm_args(p)
    p.add_argument("--prompt", choices=["object01", "yesno"], help="MLLM question: 0/1 digit or Yes/No")
    p.add_argument("--codec", choices=CODECS, default="f16", help="visual-token storage")


def rerank_spec(args: argparse.Namespace) -> RerankSpec | None:
    """The re-ranker the command line asked for, or None."""
    if not (args.rerank or args.reranker):
        return None
    return RerankSpec(args.reranker or RERANKER, vlm=args.vlm, mmproj=args.mmproj, image_tokens=args.image_tokens,
                      prompt=args.prompt, codec=args.codec)


def query_paths(items: list[Path]) -> list[Path]:
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
    if args.text and args.queries:
        raise UsageError("--text searches by text alone: no query images")
    if not args.text and not args.queries:
        raise UsageError("give query images (or folders of them), or --text")
    box = parse_box(args.box) if args.box else None  # malformed: an error before anything loads
    if args.text:
        queries = [Query(text=args.text, box=box)]
    else:
        queries = [Query(path=p, box=box) for p in query_paths(args.queries)]
    spec, failed = rerank_spec(args), 0
    with Session.from_settings(settings(args), text_encoder=args.text_encoder) as session:
        session.library  # noqa: B018  (a missing library is the first thing to say)
        reranker = session.reranker(spec)
        for q in queries:
            try:
                prepared = session.prepare(q, full=reranker is not None)  # the re-ranker looks at more pixels
            except DecodeError as e:
                print(f"edgeret: cannot read query {q.path}: {e}", file=sys.stderr)
                failed += 1
                continue
            *_, results = session.search(q, args.k, spec, args.lam, prepared=prepared)
            print_results(q.text or q.path, results, reranker.name if reranker else None, args.json, prepared.box)
    return 1 if failed else 0


def print_results(query, results, reranker: str | None, as_json: bool, box=None) -> None:
    """One query's results as a JSON line or a text block (`reranker`: the re-ranker's name, None: first stage)."""
    if as_json:
        rows = [r.as_dict(reranker) for r in results]
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
