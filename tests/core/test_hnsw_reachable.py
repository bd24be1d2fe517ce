"""Every vector in the HNSW index is found by its own vector: after a multi-threaded build and after catch-up.

USearch's concurrent add() can strand nodes no search reaches (upstream issue #735; docs/usearch-unreachable.md).
"""

import numpy as np

from edgeret.catalog import Catalog
from edgeret.vectors import HnswIndex, open_index


def _clustered(n, seed, d=64):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, d))
    x = centres[rng.integers(0, 10, n)] + 0.3 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _lost(index, keys, matrix):
    found = index.search(matrix, len(keys))
    return [int(k) for k, n in zip(keys, found, strict=True) if int(k) not in set(n.keys.tolist())]


def test_every_key_is_reachable_after_a_multithreaded_build():
    lost = {}
    for seed in range(80):  # before the repair, 1–14 of 300 were lost in about one build in eight
        x = _clustered(300, seed)
        keys = np.arange(300, dtype=np.int64)
        index = HnswIndex.build(keys, x, threads=4)
        if missing := _lost(index, keys, x):
            lost[seed] = missing
    assert lost == {}


def test_every_key_is_reachable_after_catch_up(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    x = _clustered(900, seed=3)

    def add(rows):
        catalog.write_batch([(f"/p/{i}.jpg", 1, 1, f"h{i}", 8, 8, x[i]) for i in rows], [])

    add(range(400))
    for step in range(5):
        index = open_index(tmp_path, catalog, exact_below=0)
        ids, mat = catalog.vectors()
        assert _lost(index, ids, mat) == [], f"step {step}"
        add(range(400 + 100 * step, 500 + 100 * step))
        catalog.delete_paths([f"/p/{i}.jpg" for i in range(step * 30, step * 30 + 20)])
    open_index(tmp_path, catalog, exact_below=0)
    reopened = HnswIndex.load(next(tmp_path.glob("vectors-*.usearch")))
    ids, mat = catalog.vectors()
    assert sorted(int(k) for k in reopened.index.keys) == ids.tolist()
    assert _lost(reopened, ids, mat) == []
