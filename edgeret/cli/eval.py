"""`edgeret eval`: retrieval quality of a library against a ground truth, first stage and re-ranked side by side."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..errors import UsageError
from ..evaluate import METRICS, EvalReport, evaluate, load_ground_truth, write_plots
from ..session import RerankSpec, Session
from ..settings import EVAL_K, LAMBDA
from .common import add_common, add_progress, count, interruptible, settings, wants_progress
from .search import RERANKERS


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="measure retrieval quality against a ground truth (mAP, R@1, R@5, P@10)",
        description="Every grouped image of the ground truth is a query; its positives are the rest of its group.",
    )
    p.add_argument("--gt", type=Path, required=True,
                   help="ground truth: a gt.json (devset format) or a folder with one subfolder per object")
    p.add_argument("--rerank", action="store_true", help="also re-rank the top k (default re-ranker: mllm)")
    p.add_argument("--reranker", choices=RERANKERS,
                   help="which re-ranker (implies --rerank); mllm+sv: the mean of the two probabilities")
    p.add_argument("-k", type=count, default=EVAL_K,
                   help=f"how many first-stage results are re-ranked (default {EVAL_K})")
    p.add_argument("--lambda", dest="lam", type=float, default=LAMBDA,
                   help=f"fusion weight of the first-stage score: final = λ·first + (1-λ)·P (default {LAMBDA})")
    p.add_argument("--query-boxes", "--boxes", dest="query_boxes", action="store_true",
                   help="region protocol: a query with a `box` in the ground truth is searched with that region only")
    p.add_argument("--plots", type=Path, metavar="OUT", help="write PNG charts into this folder")
    add_progress(p)
    add_common(p)  # --json: the full report, with per-query figures
    p.set_defaults(func=cmd_eval)
    return p


def cmd_eval(args) -> int:
    if not 0.0 <= args.lam <= 1.0:
        raise UsageError("--lambda must be within [0, 1]")
    s = settings(args)
    gt = load_ground_truth(args.gt)
    name = args.reranker or ("mllm" if args.rerank else None)
    with (  # Ctrl-C: report the queries done so far
        interruptible(wants_progress(args)) as (bar, cancel),
        Session.from_settings(s) as session,
    ):
        encoder = session.encoder()
        reranker = session.reranker(RerankSpec(name) if name else None)
        report = evaluate(session.library, gt, encoder, reranker, k=args.k, lam=args.lam, progress=bar, cancel=cancel,
                          query_boxes=args.query_boxes)
    if args.plots:
        written = write_plots(report, args.plots)
        if not args.json:
            print("plots: " + ", ".join(str(p) for p in written))
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(format_report(report))
    return 130 if report.cancelled else 0


def format_report(report: EvalReport) -> str:
    """A text table: one row per slice, each metric as first stage (and re-ranked) side by side."""
    d = report.as_dict(per_query=False)
    head = (
        f"{d['queries']} queries, {d['skipped_no_positives']} skipped (no positives), library of "
        f"{d['library_size']} images, encoder {d['encoder']}"
    )
    if report.reranker:
        head += f"; re-ranker {report.reranker} on the top {report.k}, λ={report.lam}"
    if report.query_boxes:
        head += f"; region protocol: {d['boxed_queries']} boxed queries searched with their box"
    if report.cancelled:
        head += "  [CANCELLED: partial results]"
    names = [m.replace("@k", f"@{report.k}") for m in METRICS]
    cell = 13 if report.reranker else 6
    lines = [head, f"{'slice':<36}{'n':>5}  " + "".join(f"{n:>{cell}}  " for n in names)]
    if report.reranker:
        lines.append(" " * 43 + "".join(f"{'first → ' + report.reranker[:4]:>{cell}}  " for _ in names))
    for name, row in d["metrics"].items():
        cells = []
        for m in METRICS:
            v = _fmt(row["first_stage"][m])
            if report.reranker:
                v += " → " + _fmt(row["reranked"][m])
            cells.append(f"{v:>{cell}}  ")
        lines.append(f"{name:<36}{row['first_stage']['n']:>5}  " + "".join(cells))
    lines.append(
        f"time: first stage {d['seconds']['first_stage']:.1f}s"
        + (f", re-ranking {d['seconds']['rerank']:.1f}s" if report.reranker else "")
    )
    return "\n".join(lines)


def _fmt(v) -> str:
    return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
