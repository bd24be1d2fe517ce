"""Cluster fixtures: one real local Ray (2 CPUs) for the session, generated photos, a local library to compare with.

The tests of this folder need the cluster extra (ray, pymilvus, milvus-lite, pyarrow) and skip without it, except
test_cluster_imports, which checks that nothing else imports those packages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeret.testing.photos import make_photo

RAY_CPUS = 2
N_PHOTOS = 24
BAD = {"broken.jpg": b"\xff\xd8\xff\xe0 not really a jpeg", "empty.png": b"", "notes.gif": b"GIF89a\x01"}


@pytest.fixture(scope="session")
def ray_address():
    """A local Ray with 2 CPUs, started once; cluster commands in this process use it, subprocesses connect to it."""
    ray = pytest.importorskip("ray")
    from edgeret.cluster.runtime import ray_session

    with ray_session(None, RAY_CPUS):
        yield ray.get_runtime_context().gcs_address


def write_photos(root: Path, n: int = N_PHOTOS, size=(320, 240)) -> Path:
    """`n` distinct JPEGs, a copy of the first under another name, and files that cannot be decoded."""
    for i in range(n):
        make_photo(root / ("a" if i % 2 else "b") / f"img{i:03d}.jpg", seed=i, size=size)
    (root / "b" / "copy-of-img000.jpg").write_bytes((root / "b" / "img000.jpg").read_bytes())
    for name, data in BAD.items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def cluster_photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("cluster-photos"))
