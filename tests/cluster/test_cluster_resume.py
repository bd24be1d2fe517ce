"""A cluster index job killed mid-run (SIGKILL on the driver) resumes without duplicates and without losing a photo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

for _name in ("ray", "pymilvus", "milvus_lite", "pyarrow"):
    pytest.importorskip(_name)

from edgeret.cluster.collection import PhotoCollection  # noqa: E402
from edgeret.cluster.index import ClusterOptions, index  # noqa: E402
from edgeret.cluster.runtime import milvus_client  # noqa: E402
from edgeret.cluster.state import JobState  # noqa: E402

from .conftest import BAD, write_photos  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
N = 40
BATCH = 4

# The driver: a real `cluster index` against the session's Ray; it reports each written batch (and takes its time
# over it, so the kill lands while batches are still in flight).
DRIVER = """
import sys, time
from pathlib import Path
from edgeret.cluster.index import ClusterOptions, index

def progress(done, total, path):
    print(done, total, flush=True)
    time.sleep(0.3)

opts = ClusterOptions(library=Path(sys.argv[1]), ray=sys.argv[2], workers=1, threads=1)
index([sys.argv[3]], opts, sys.argv[4], batch_size=int(sys.argv[5]), progress=progress)
print("finished", flush=True)
"""


def _paths(opts) -> list[str]:
    coll = PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection)
    return [r["path"] for page in coll.rows(["path"]) for r in page]


def test_killed_driver_resumes_without_duplicates(ray_address, tiny_encoder, tmp_path):
    photos = write_photos(tmp_path / "photos", N)
    lib = tmp_path / "lib"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(lib), ray_address, str(photos), str(tiny_encoder),
                               str(BATCH)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        seen = [driver.stdout.readline() for _ in range(3)]  # three batches written and reported
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert all(line.split()[0].isdigit() for line in seen), seen
    time.sleep(0.5)

    opts = ClusterOptions(library=lib, workers=2, threads=1)
    before = _paths(opts)
    with JobState(lib, opts.collection) as state:
        failed_before = len(state.failures())
    total = N + 1  # the photos and the copy of the first (the bad files are failures, not rows)
    reported = int(seen[-1].split()[0])  # photos in the batches written before the kill
    assert reported <= len(before) + failed_before < total + len(BAD)  # those were kept; the job was not done

    report = index([], opts, str(tiny_encoder), batch_size=BATCH)  # the sources the killed job recorded
    after = _paths(opts)
    assert len(after) == len(set(after)) == total  # no duplicates, nothing lost
    assert set(before) <= set(after)
    assert report.indexed == total - len(before) and report.unchanged >= len(before)
    with JobState(lib, opts.collection) as state:
        assert sorted(p.rsplit("/", 1)[-1] for p, _ in state.failures()) == sorted(BAD)

    # a moved photo keeps its vector (copied by content hash) and is not counted as removed
    (photos / "a" / "img001.jpg").rename(photos / "a" / "renamed.jpg")
    moved = index([], opts, str(tiny_encoder))
    assert (moved.indexed, moved.moved, moved.removed) == (1, 1, 0)
    assert len(_paths(opts)) == total
