"""SIGKILL a real indexing process at several moments; the library must open, search and resume every time."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from edgeret.library import Library
from edgeret.testing.photos import make_photo

pytestmark = pytest.mark.slow

N = 200


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    for i in range(N):
        make_photo(root / f"d{i % 4}" / f"p{i:03d}.jpg", seed=i, size=(640, 480))
    return root


def _index_cmd(library, photos, encoder):
    return [
        sys.executable, "-m", "edgeret.cli", "index", str(photos), "--library", str(library),
        "--encoder", str(encoder), "--threads", "1", "--batch-size", "4", "--json",
    ]


def _env(exact_below):
    return os.environ | {"EDGERET_EXACT_BELOW": str(exact_below)}


def _rows(library) -> int:
    try:
        with sqlite3.connect(f"file:{library / 'catalog.sqlite'}?mode=ro", uri=True, timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    except sqlite3.Error:
        return 0


def _kill_when(proc, library, rows: int, deadline: float = 60) -> None:
    """SIGKILL `proc` as soon as the catalog holds `rows` rows (at once for 0)."""
    end = time.monotonic() + deadline
    while rows and _rows(library) < rows and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("exact_below", [50_000, 0], ids=["exact", "hnsw"])
def test_killed_indexer_leaves_a_library_that_opens_searches_and_resumes(tmp_path, many_photos, tiny_encoder,
                                                                         exact_below):
    library = tmp_path / "lib"
    for rows in [0, 4, 50, 120, 190]:
        proc = subprocess.Popen(_index_cmd(library, many_photos, tiny_encoder), env=_env(exact_below),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _kill_when(proc, library, rows)
        if not (library / "catalog.sqlite").exists():
            continue
        with Library(library, exact_below=exact_below) as lib:
            ids, mat = lib.catalog.vectors()
            assert lib.status()["indexed"] == len(ids) >= min(rows, N - 1)
            if len(ids):
                assert lib.search_vectors(mat[:1], k=5)[0][0].key == ids[0]
    done = subprocess.run(_index_cmd(library, many_photos, tiny_encoder), env=_env(exact_below),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] == 0 and report["indexed"] + report["unchanged"] == N
    assert report["unchanged"] >= 190  # the killed runs' commits were kept
    with Library(library, exact_below=exact_below) as lib:
        st = lib.status()
        assert st["indexed"] == N and st["failed"] == 0
        ids, mat = lib.catalog.vectors()
        index = lib.refresh_index()
        assert len(index) == N
        if index.kind == "hnsw":  # approximate, and tiny-encoder vectors crowd together: self within the top 5
            assert sorted(int(k) for k in index.index.keys) == ids.tolist()
        found = lib.search_vectors(mat, k=5)
        assert np.mean([key in {h.key for h in hits} for key, hits in zip(ids, found, strict=True)]) >= 0.98
