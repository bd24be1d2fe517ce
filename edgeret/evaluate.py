"""Retrieval evaluation: ground truth, every query through the real search pipeline, metrics per slice.

Protocol (instance retrieval, as in the devset README): the database is the whole library; every image that belongs
to a group is a query; its positives are the other images of its group; the query is removed from its own ranking.
A query whose group has no other image has no defined AP: it is skipped and counted. The first stage ranks the whole
library (mAP over the full ranking); a re-ranker reorders the top k, the rest keeps its first-stage order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .box import boxed_query
from .decode import decode
from .encoders import ImageEncoder
from .errors import Cancelled, EdgeretError
from .library import Hit, Library
from .metrics import average_precision, precision_at, recall_at
from .query import PairReranker, run_query
from .scan import scan
from .settings import EVAL_K, LAMBDA

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (queries done, total, current query path), like the indexer's
METRICS = ("mAP", "mAP@k", "R@1", "R@5", "P@10")
FOLDER_KIND = "instance"  # query kind and group type of every image in a folder-per-instance ground truth


class GroundTruthError(EdgeretError):
    """The ground truth cannot be read or does not match the library."""


@dataclass(frozen=True)
class GTImage:
    path: str  # absolute, as written in the ground truth (symlinks not resolved)
    group: str | None
    kind: str
    group_type: str | None
    box: tuple[int, int, int, int] | None = None  # where the object lies in the image (devset: clutter_paste)


@dataclass(frozen=True)
class Query:
    path: str
    group: str
    kind: str
    group_type: str
    positives: frozenset[str]  # library paths of the other images of the group
    box: tuple[int, int, int, int] | None = None  # searched as this region under the region protocol


@dataclass
class GroundTruth:
    images: list[GTImage]
    source: str

    def queries(self) -> list[Query]:
        """Every grouped image as a query, positives = the rest of its group (possibly empty)."""
        members: dict[str, list[str]] = defaultdict(list)
        for im in self.images:
            if im.group is not None:
                members[im.group].append(im.path)
        return [
            Query(im.path, im.group, im.kind, im.group_type or "", frozenset(members[im.group]) - {im.path}, im.box)
            for im in self.images
            if im.group is not None
        ]


# ground truth ---------------------------------------------------------------------------------------------------
def load_ground_truth(path: Path | str) -> GroundTruth:
    """A devset-style gt.json file, or a folder with one subfolder per object (files at its top: distractors)."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        return _from_folders(path)
    if path.is_file():
        return _from_json(path)
    raise GroundTruthError(f"ground truth {path} does not exist")


def _box4(values) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(v) for v in values)
    return x0, y0, x1, y1


def _from_json(path: Path) -> GroundTruth:
    try:
        raw = json.loads(path.read_text())
        types = {g["id"]: g.get("type") for g in raw.get("groups", [])}
        images = [
            GTImage(str(_under(path.parent, im["file"])), im.get("group"), im.get("kind") or "unknown",
                    types.get(im.get("group")) if im.get("group") is not None else None,
                    _box4(im["box"]) if im.get("box") else None)
            for im in raw["images"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise GroundTruthError(f"cannot read ground truth {path}: {type(e).__name__}: {e}") from None
    return GroundTruth(images, str(path))


def _under(base: Path, file: str) -> Path:
    p = Path(file).expanduser()
    return p if p.is_absolute() else Path(os.path.normpath(base / p))


def _from_folders(root: Path) -> GroundTruth:
    images = []
    for p in scan([root]):
        rel = p.relative_to(root)
        group = rel.parts[0] if len(rel.parts) > 1 else None
        images.append(GTImage(str(p), group, FOLDER_KIND if group else "distractor", FOLDER_KIND if group else None))
    if not any(im.group for im in images):
        raise GroundTruthError(f"{root} has no subfolders with images: expected one subfolder per object")
    return GroundTruth(images, str(root))


def library_paths(library: Library, gt: GroundTruth) -> dict[str, str]:
    """Map each ground-truth path to the library's own spelling of it; raise naming every image not in the library."""
    by_real = {os.path.realpath(p): p for _, p in library.catalog.photos()}
    found, missing = {}, []
    for im in gt.images:
        hit = by_real.get(os.path.realpath(im.path))
        if hit is None:
            missing.append(im.path)
        else:
            found[im.path] = hit
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise GroundTruthError(
            f"{len(missing)} image(s) of the ground truth {gt.source} are not in the library {library.path} "
            f"(index them, or check that they decode):\n  {shown}"
        )
    return found


# metrics --------------------------------------------------------------------------------------------------------
def ranking_metrics(ranked: Sequence[str], positives: set[str] | frozenset[str], k: int) -> dict[str, float]:
    """The reported metrics of one ranking (query already removed); mAP@k is AP@k normalised by min(k, |pos|)."""
    return {
        "mAP": average_precision(ranked, positives),
        "mAP@k": average_precision(ranked, positives, k),
        "R@1": recall_at(ranked, positives, 1),
        "R@5": recall_at(ranked, positives, 5),
        "P@10": precision_at(ranked, positives, 10),
    }


def summarize(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over queries (NaN, i.e. undefined, values left out) and the query count `n`."""
    rows = list(rows)
    out: dict[str, float] = {"n": len(rows)}
    for m in METRICS:
        vals = [r[m] for r in rows if not math.isnan(r[m])]
        out[m] = sum(vals) / len(vals) if vals else math.nan
    return out


# the runner -----------------------------------------------------------------------------------------------------
@dataclass
class QueryResult:
    query: Query
    first_stage: dict[str, float]
    reranked: dict[str, float] | None = None

    def as_dict(self) -> dict:
        q = self.query
        d = {"query": q.path, "group": q.group, "group_type": q.group_type, "kind": q.kind,
             "positives": len(q.positives), "first_stage": self.first_stage}
        if self.reranked is not None:
            d["reranked"] = self.reranked
        return d


@dataclass
class EvalReport:
    k: int
    lam: float
    reranker: str | None
    library_size: int
    results: list[QueryResult] = field(default_factory=list)
    skipped_no_positives: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds_first_stage: float = 0.0
    seconds_rerank: float = 0.0
    encoder: str | None = None
    ground_truth: str | None = None
    query_boxes: bool = False  # the region protocol: boxed queries searched with their region

    def slices(self) -> dict[str, list[QueryResult]]:
        """"overall", "group_type=..." and "kind=..." -> the queries in that slice (sorted slice names)."""
        out: dict[str, list[QueryResult]] = {"overall": list(self.results)}
        for prefix, attr in (("group_type", "group_type"), ("kind", "kind")):
            for key in sorted({getattr(r.query, attr) for r in self.results}):
                out[f"{prefix}={key}"] = [r for r in self.results if getattr(r.query, attr) == key]
        return out

    def summary(self) -> dict[str, dict]:
        out = {}
        for name, rows in self.slices().items():
            out[name] = {"first_stage": summarize(r.first_stage for r in rows)}
            if self.reranker:
                out[name]["reranked"] = summarize(r.reranked for r in rows if r.reranked is not None)
        return out

    def as_dict(self, per_query: bool = True) -> dict:
        d = {
            "ground_truth": self.ground_truth, "encoder": self.encoder, "library_size": self.library_size,
            "queries": len(self.results), "skipped_no_positives": len(self.skipped_no_positives),
            "k": self.k, "lambda": self.lam, "reranker": self.reranker, "cancelled": self.cancelled,
            "query_boxes": self.query_boxes, "boxed_queries": sum(r.query.box is not None for r in self.results),
            "seconds": {"first_stage": round(self.seconds_first_stage, 3), "rerank": round(self.seconds_rerank, 3)},
            "metrics": _clean(self.summary()),
        }
        if per_query:
            d["per_query"] = _clean([r.as_dict() for r in self.results])
            d["skipped"] = self.skipped_no_positives
        return d


def _clean(x):
    """NaN -> None so the report is valid JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def evaluate(
    library: Library,
    gt: GroundTruth,
    encoder: ImageEncoder,
    reranker: PairReranker | None = None,
    k: int = EVAL_K,
    lam: float = LAMBDA,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    select: Callable[[Query], bool] | None = None,
    query_boxes: bool = False,
) -> EvalReport:
    """Run every query of `gt` (or those `select` accepts) through `library`, then `reranker` on the top k if given.

    With `query_boxes` (the region protocol) a query that has a box is searched with that region only.

    On cancel the report holds the queries finished so far and `cancelled` is set.
    """
    if k < 1:
        raise EdgeretError(f"k must be at least 1, got {k}")
    spelling = library_paths(library, gt)
    library.refresh_index()
    depth = library.photo_count()  # rank every photo (the index may hold several vectors per photo)
    report = EvalReport(k, lam, reranker.name if reranker else None, depth, encoder=encoder.spec,
                        ground_truth=gt.source, query_boxes=query_boxes)
    queries = []
    for q in gt.queries():
        if select is not None and not select(q):
            continue
        if q.positives:
            queries.append(Query(spelling[q.path], q.group, q.kind, q.group_type,
                                 frozenset(spelling[p] for p in q.positives), q.box if query_boxes else None))
        else:
            report.skipped_no_positives.append(q.path)
    for done, q in enumerate(queries):
        if cancel is not None and cancel():
            report.cancelled = True
            break
        if progress is not None:
            progress(done, len(queries), q.path)
        try:
            report.results.append(_run_one(library, encoder, q, depth, reranker, k, lam, cancel, report))
        except Cancelled:
            report.cancelled = True
            break
    else:
        if progress is not None:
            progress(len(queries), len(queries), "")
    return report


def _run_one(library, encoder, q: Query, depth, reranker, k, lam, cancel, report: EvalReport) -> QueryResult:
    t0 = time.perf_counter()
    # Decoded as `edgeret search` does, so first-stage figures do not depend on whether a re-ranker runs.
    image = decode(q.path, min_side=None if q.box else library.decode_side(encoder))
    region, rerank_query, _ = boxed_query(image, q.box)
    hits = [h for h in library.search_images([region], encoder, depth)[0] if h.path != q.path]
    first = [h.path for h in hits]
    t1 = time.perf_counter()
    report.seconds_first_stage += t1 - t0
    result = QueryResult(q, ranking_metrics(first, q.positives, k))
    if reranker is not None:
        # The re-ranker gets the query at full resolution: it downscales to its own working size.
        top = rerank_top(hits[:k], rerank_query if q.box else decode(q.path), reranker, lam, cancel)
        result.reranked = ranking_metrics(top + first[k:], q.positives, k)
        report.seconds_rerank += time.perf_counter() - t1
    return result


def rerank_top(hits: Sequence[Hit], image, reranker: PairReranker, lam: float, cancel=None) -> list[str]:
    """The final order of `hits` after `reranker` has judged every one (raises Cancelled if stopped midway)."""
    final: list = []
    updates = 0
    for results in run_query(hits, image, reranker, lam, cancel):
        final, updates = results, updates + 1
    # run_query yields once for the first stage, then once per judged candidate: fewer means it was stopped.
    if updates <= len(hits) and cancel is not None and cancel():
        raise Cancelled("evaluation cancelled")
    return [r.path for r in final]


# charts ---------------------------------------------------------------------------------------------------------
def write_plots(report: EvalReport, out: Path | str) -> list[Path]:
    """PNG bar charts: mAP per query kind and per group type, and every metric overall; first stage vs re-ranked."""
    try:
        import matplotlib
    except ImportError:
        raise EdgeretError("--plots needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only: never open a window, work without a display
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = report.summary()
    written = [
        _bars(summary, "kind=", "mAP", out / "map_by_kind.png", report),
        _bars(summary, "group_type=", "mAP", out / "map_by_group_type.png", report),
        _overall(summary["overall"], out / "metrics_overall.png", report),
    ]
    return written


def _series(report: EvalReport) -> list[tuple[str, str]]:
    out = [("first_stage", "first stage")]
    if report.reranker:
        out.append(("reranked", f"re-ranked ({report.reranker}, k={report.k}, λ={report.lam})"))
    return out


def _bars(summary: dict, prefix: str, metric: str, path: Path, report: EvalReport) -> Path:
    names = [n for n in summary if n.startswith(prefix)]
    # "synthetic:crop_zoom" on two lines, so long kind names do not run into each other
    labels = [n[len(prefix):].replace(":", ":\n") + f"\n(n={summary[n]['first_stage']['n']})" for n in names]
    values = {key: [summary[n][key][metric] for n in names] for key, _ in _series(report)}
    return _chart(labels, values, _series(report), f"{metric} by {prefix[:-1].replace('_', ' ')}", metric, path)


def _overall(overall: dict, path: Path, report: EvalReport) -> Path:
    names = [m.replace("@k", f"@{report.k}") for m in METRICS]
    values = {key: [overall[key][m] for m in METRICS] for key, _ in _series(report)}
    return _chart(names, values, _series(report), f"overall ({overall['first_stage']['n']} queries)", "", path)


def _chart(labels, values, series, title, ylabel, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(labels))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels) + 2), 4.2), layout="constrained")
    for i, (key, label) in enumerate(series):
        ys = [0.0 if v is None or math.isnan(v) else v for v in values[key]]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, ys, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.22)  # headroom above 1.0 for the legend
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", ncols=len(series))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
