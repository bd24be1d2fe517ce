"""Acting on results outside the app: export the list with its scores (CSV/JSON), copy or move photos to a folder.

Copies never overwrite: a name already taken in the target gets " (2)", " (3)", ... before its extension.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import UsageError
from .query import Result
from .verdicts import Thresholds

COLUMNS = ("rank", "path", "verdict", "p_same", "first_stage", "final")


def result_rows(results: Sequence[Result], thresholds: Thresholds | None = None, judged: bool = True) -> list[dict]:
    """One dict per result, best first; `judged` False (no re-ranker ran) leaves verdict and P(same) empty."""
    t = thresholds or Thresholds()
    rows = []
    for rank, r in enumerate(results, 1):
        p = None if r.p_same is None or math.isnan(r.p_same) else r.p_same
        rows.append({"rank": rank, "path": r.path, "verdict": t.verdict(r.p_same).value if judged else None,
                     "p_same": p, "first_stage": r.first_stage, "final": r.final})
    return rows


def export_results(results: Sequence[Result], path: Path | str, *, query: str | None = None,
                   reranker: str | None = None, thresholds: Thresholds | None = None) -> Path:
    """Write `results` to `path`: CSV for .csv, JSON for .json (with the query, re-ranker and thresholds)."""
    path = Path(path)
    t = thresholds or Thresholds()
    rows = result_rows(results, t, judged=reranker is not None)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            w.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    elif path.suffix.lower() == ".json":
        doc = {"query": query, "reranker": reranker, "thresholds": {"same": t.same, "different": t.different},
               "results": rows}
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
    else:
        raise UsageError(f"export to .csv or .json, not {path.suffix or 'a file without extension'}")
    return path


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or the first "stem (n).ext" in folder that does not exist yet."""
    target = folder / name
    n = 2
    while target.exists():
        target = folder / f"{Path(name).stem} ({n}){Path(name).suffix}"
        n += 1
    return target


def copy_photos(paths: Sequence[str | Path], folder: Path | str, *, move: bool = False,
                progress: Callable[[int, int, str], None] | None = None) -> list[tuple[str, str]]:
    """Copy (or move) each photo into `folder`, never overwriting; returns (source, destination) pairs done.

    A photo that cannot be copied stops the run with an OSError after the ones done so far (they stay done)."""
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    for i, src in enumerate(paths, 1):
        src = Path(src)
        if src.resolve().parent == folder.resolve():
            continue  # already there: copying would only make a duplicate
        dst = free_name(folder, src.name)
        if move:
            shutil.move(str(src), str(dst))
        else:
            shutil.copy2(src, dst)
        done.append((str(src), str(dst)))
        if progress:
            progress(i, len(paths), str(src))
    return done
