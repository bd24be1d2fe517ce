"""`edgeret cluster …`: index, encode-tokens, search, duplicates and status on a Ray cluster with Milvus.

Parsing needs nothing from the cluster extra; each command checks that ray, pymilvus and pyarrow are installed
(saying how to install them) and only then imports edgeret.cluster's modules.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .. import settings as defaults
from ..errors import UsageError
from .common import add_common, add_mllm_args, count, interruptible, print_status, settings, wants_progress
from .duplicates import groups_json, print_groups
from .library import CODECS, print_report


def add_parser(subparsers) -> None:
    """Add `cluster` and its subcommands to an argparse subparsers object."""
    cluster = subparsers.add_parser("cluster", help="the same pipeline on a Ray cluster, vectors in Milvus "
                                    "(pip install 'edgeret[cluster]')")
    sub = cluster.add_subparsers(dest="cluster_command", required=True)

    p = sub.add_parser("index", help="index photo folders or URLs into the Milvus collection")
    p.add_argument("sources", nargs="*", help="folders, files or fsspec URLs; none: the collection's sources")
    p.add_argument("--batch-size", type=count, default=defaults.BATCH_SIZE, help="photos per encoder batch")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="execution provider of each encoder")
    _common(p, progress=True)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("encode-tokens", help="store every photo's visual tokens as Parquet files")
    add_mllm_args(p)
    p.add_argument("--codec", choices=CODECS, default="f16", help="token storage")
    p.add_argument("--batch-size", type=count, default=8, help="photos per token file")
    _common(p, progress=True, encoder=False)
    p.set_defaults(func=cmd_encode_tokens)

    p = sub.add_parser("search", help="find photos showing the same object, first stage in Milvus")
    p.add_argument("queries", nargs="+", type=Path, help="query images, or folders of them")
    p.add_argument("-k", type=count, default=defaults.K, help="how many results per query (and how many to re-rank)")
    p.add_argument("--rerank", action="store_true", help="re-rank the top k by the MLLM on a pool of Ray actors")
    p.add_argument("--lambda", dest="lam", type=float, default=defaults.LAMBDA, help="final = λ·cosine + (1−λ)·P(same)")
    add_mllm_args(p)
    p.add_argument("--prompt", choices=["object01", "yesno"], help="MLLM question: 0/1 digit or Yes/No")
    _common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("duplicates", help="groups of near-duplicate photos in the collection")
    p.add_argument("--threshold", type=float, default=defaults.DUPLICATE_THRESHOLD,
                   help=f"cosine from which two photos group (default {defaults.DUPLICATE_THRESHOLD})")
    p.add_argument("-k", "--neighbours", type=count, default=defaults.DUPLICATE_K,
                   help=f"neighbours examined per photo (default {defaults.DUPLICATE_K})")
    _common(p, progress=True, encoder=False)
    p.set_defaults(func=cmd_duplicates)

    p = sub.add_parser("status", help="what the collection and the job state hold")
    _common(p, encoder=False)
    p.set_defaults(func=cmd_status)


def _common(p: argparse.ArgumentParser, progress: bool = False, encoder: bool = True) -> None:
    add_common(p, encoder=encoder, progress=progress,
               threads_help=f"CPU threads per actor (default {defaults.CLUSTER_THREADS}; env EDGERET_THREADS)")
    p.add_argument("--ray", metavar="ADDRESS", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all cores)")
    p.add_argument("--milvus", metavar="URI", help="Milvus URI (default: milvus-lite in the library folder)")
    p.add_argument("--collection", default=defaults.CLUSTER_COLLECTION,
                   help=f"Milvus collection (default: {defaults.CLUSTER_COLLECTION})")
    p.add_argument("--workers", type=count, default=defaults.CLUSTER_WORKERS,
                   help=f"actors in the pool (default {defaults.CLUSTER_WORKERS})")
    p.add_argument("--tokens", metavar="DIR|URL", help="visual-token folder every worker can read "
                   "(default: tokens/ in the library folder)")


def _options(args: argparse.Namespace):
    """The settings and ClusterOptions of the command line, once the extra is known to be installed."""
    from ..cluster import require

    require(local_milvus=args.milvus is None)
    from ..cluster.index import ClusterOptions

    s = settings(args, base={"threads": defaults.CLUSTER_THREADS})
    return s, ClusterOptions(library=s.library, collection=args.collection, ray=args.ray, milvus=args.milvus,
                             cpus=args.cpus, workers=args.workers, threads=s.threads,
                             device=getattr(args, "device", "cpu"))


def _mllm_files(args: argparse.Namespace) -> dict:
    from ..rerankers import mllm_files

    return mllm_files(vlm=args.vlm, mmproj=args.mmproj, image_tokens=args.image_tokens,
                      prompt=getattr(args, "prompt", None))


def cmd_index(args: argparse.Namespace) -> int:
    s, opts = _options(args)
    from ..cluster.index import index

    with interruptible(wants_progress(args)) as (bar, cancel):
        report = index(args.sources, opts, encoder_spec=s.encoder, batch_size=args.batch_size, progress=bar,
                       cancel=cancel)
    print_report(report, args.json)
    return 130 if report.cancelled else 0


def cmd_encode_tokens(args: argparse.Namespace) -> int:
    _, opts = _options(args)
    from ..cluster.encode_tokens import encode_tokens

    with interruptible(wants_progress(args)) as (bar, cancel):
        out = encode_tokens(opts, _mllm_files(args), args.tokens, args.codec, args.batch_size, bar, cancel)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"visual tokens: encoded {out['visual_tokens_encoded']}, stored {out['visual_tokens_stored']}, "
              f"failed {out['failed']}")
        for f in out["failures"]:
            print(f"  failed: {f['path']}: {f['reason']}")
    return 130 if out["cancelled"] else 0


def cmd_search(args: argparse.Namespace) -> int:
    s, opts = _options(args)
    from ..cluster.search import RayPairReranker, search
    from .search import print_results, query_paths

    if not 0.0 <= args.lam <= 1.0:
        raise UsageError("--lambda must be between 0 and 1")
    rerank = _mllm_files(args) if args.rerank else None
    name = RayPairReranker.name if args.rerank else None
    failed = 0
    for q, results in search(query_paths(args.queries), opts, args.k, s.encoder, rerank, args.lam, args.tokens):
        if isinstance(results, Exception):
            print(f"edgeret: cannot read query {q}: {results}", file=sys.stderr)
            failed += 1
        else:
            print_results(q, results, name, args.json)
    return 1 if failed else 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    _, opts = _options(args)
    from ..cluster.duplicates import find_duplicates

    t0 = time.perf_counter()
    with interruptible(wants_progress(args)) as (bar, _):
        groups = find_duplicates(opts, args.threshold, args.neighbours, progress=bar)
    photos = _photo_count(opts)
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps(groups_json(args.threshold, photos, seconds, groups)))
    else:
        print_groups(groups, photos, seconds)
    return 0


def _photo_count(opts) -> int:
    from ..cluster.collection import PhotoCollection
    from ..cluster.runtime import milvus_client

    return PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection).count()


def cmd_status(args: argparse.Namespace) -> int:
    _, opts = _options(args)
    from ..cluster.index import status

    st = status(opts)
    return print_status(st, args.json, [
        ("collection", f"{st['collection']} at {st['milvus']}"),
        ("encoder", st["encoder"]),
        ("photos", f"{st['photos']}   failed {st['failed']}"),
        *(("source", r) for r in st["sources"]),
    ])
