"""Where the app's verdict thresholds come from: P(same) of every (query, candidate) pair the re-ranker judges on the
devset, split by whether the pair truly shows the same object, and what "Same object" / "Maybe" / "Different" would
say at each threshold.

For each devset query, the first-stage top k (default 20, the app's default) is judged by the `sv` re-ranker. For a
"same" threshold t it prints the share of pairs called Same object that truly are (precision) and the share of true
matches called Same object (recall); for a "different" threshold d, the share of true matches wrongly called
Different and the share of other objects called Different. Prints a table and a final JSON line.

    python scripts/verdict_thresholds.py [--k 20] [--library DIR] [--encoder ../shared/models/mnv2-gem]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeret.decode import decode  # noqa: E402
from edgeret.evaluate import library_paths, load_ground_truth  # noqa: E402
from edgeret.library import Library  # noqa: E402
from edgeret.rerank.sv import SvReranker  # noqa: E402
from edgeret.testing.shared import DEVSET, MNV2  # noqa: E402
from edgeret.verdicts import DIFFERENT_BELOW, SAME_AT  # noqa: E402


def judged_pairs(lib: Library, gt_path: Path, k: int, threads: int) -> list[tuple[float, bool]]:
    """(P(same), truly the same object) for each query's first-stage top k."""
    gt = load_ground_truth(gt_path)
    paths = library_paths(lib, gt)
    sv = SvReranker(threads=threads)
    pairs = []
    for q in gt.queries():
        qpath = paths[q.path]
        key = lib.key_for_path(qpath)
        hits = lib.search_vectors(lib.vector_of(key), k, exclude_keys=[key])[0]
        positives = {paths[p] for p in q.positives}
        image = decode(qpath)
        for i, p in sv.score(image, sv.candidates(hits)):
            pairs.append((p, hits[i].path in positives))
    return pairs


def table(pairs: list[tuple[float, bool]]) -> dict:
    same = [p for p, s in pairs if s]
    other = [p for p, s in pairs if not s]
    rows = {"pairs": len(pairs), "same_pairs": len(same), "other_pairs": len(other),
            "same_at": {}, "different_below": {}}
    for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        called = [s for p, s in pairs if p >= t]
        rows["same_at"][t] = {"precision": sum(called) / max(1, len(called)),
                              "recall": sum(p >= t for p in same) / max(1, len(same))}
    for d in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5):
        rows["different_below"][d] = {"matches_called_different": sum(p < d for p in same) / max(1, len(same)),
                                      "others_called_different": sum(p < d for p in other) / max(1, len(other))}
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--gt", type=Path, default=DEVSET / "gt.json")
    ap.add_argument("--encoder", default=str(MNV2))
    ap.add_argument("--library", type=Path, help="an indexed library (default: index the devset into a temp dir)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib_path = args.library or Path(tmp) / "lib"
        if args.library is None:
            with Library(lib_path, writable=True) as lib:
                lib.index([args.gt.parent / "images"], encoder_spec=args.encoder, threads=args.threads)
        with Library(lib_path) as lib:
            rows = table(judged_pairs(lib, args.gt, args.k, args.threads))
    print(f"{rows['pairs']} pairs judged by sv ({rows['same_pairs']} same object, {rows['other_pairs']} other)")
    print("same_at   precision  recall")
    for t, r in rows["same_at"].items():
        mark = "  <- default" if t == SAME_AT else ""
        print(f"  {t:<6}  {r['precision']:.3f}      {r['recall']:.3f}{mark}")
    print("different_below   matches called Different   others called Different")
    for d, r in rows["different_below"].items():
        mark = "  <- default" if d == DIFFERENT_BELOW else ""
        print(f"  {d:<6}          {r['matches_called_different']:.3f}                      "
              f"{r['others_called_different']:.3f}{mark}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
