"""`edgeret cluster` on a real local Ray and milvus-lite against the local library on the same photos and models.

index (bad files reported like the local indexer) → re-run skips → search and duplicates equal the local ones →
visual tokens and re-ranked scores equal the local re-ranker's exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

for _name in ("ray", "pymilvus", "milvus_lite", "pyarrow"):
    pytest.importorskip(_name)

from edgeret.cli import main  # noqa: E402
from edgeret.cluster.collection import PhotoCollection  # noqa: E402
from edgeret.cluster.index import ClusterOptions, index, status  # noqa: E402
from edgeret.cluster.runtime import milvus_client  # noqa: E402
from edgeret.library import Library  # noqa: E402
from edgeret.testing.photos import snapshot  # noqa: E402

from .conftest import BAD, N_PHOTOS  # noqa: E402

pytestmark = pytest.mark.cluster
K = 8


@pytest.fixture(scope="module")
def built(ray_address, cluster_photos, tiny_encoder, tmp_path_factory):
    """The same photos indexed by `edgeret cluster index` (2 encoder actors) and by the local library."""
    before = snapshot(cluster_photos)
    opts = ClusterOptions(library=tmp_path_factory.mktemp("cluster-lib"), workers=2, threads=1)
    report = index([str(cluster_photos)], opts, str(tiny_encoder), batch_size=4)
    local = tmp_path_factory.mktemp("local-lib")
    with Library(local, writable=True) as lib:
        local_report = lib.index([cluster_photos], encoder_spec=str(tiny_encoder), threads=1)
    assert snapshot(cluster_photos) == before  # the photo folders are only ever read
    return opts, report, local, local_report


def _cli(capsys, *argv) -> list[dict]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [json.loads(line) for line in captured.out.splitlines()]


def _collection(opts) -> PhotoCollection:
    return PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection)


def test_index_writes_every_photo_once_and_reports_bad_files_like_the_local_indexer(built):
    opts, report, local, local_report = built
    assert report.indexed == local_report.indexed == N_PHOTOS + 1  # the copy is a photo of its own
    assert sorted(report.failed) == sorted(local_report.failed)
    assert {p.rsplit("/", 1)[-1] for p, _ in report.failed} == set(BAD)
    assert all(reason for _, reason in report.failed)
    st = status(opts)
    assert st["photos"] == N_PHOTOS + 1 and st["failed"] == len(BAD)
    with Library(local) as lib:
        assert st["failures"] == lib.status()["failures"]
        details = {d[0]: d for d in lib.catalog.details().values()}
    rows = {r["path"]: r for page in _collection(opts).rows() for r in page}
    assert set(rows) == set(details)
    for path, r in rows.items():  # same content hash, size, mtime and pixel size as the local catalog
        assert (r["size"], r["mtime_ns"], r["width"], r["height"], r["content_hash"]) == details[path][1:]


def test_rerun_skips_what_is_there_and_does_not_retry_unchanged_failures(built, cluster_photos, tiny_encoder):
    opts, *_ = built
    again = index([], opts, str(tiny_encoder))  # no sources: the collection's own
    assert (again.indexed, again.unchanged, again.failed, again.removed) == (0, N_PHOTOS + 1 + len(BAD), [], 0)
    assert _collection(opts).count() == N_PHOTOS + 1


def test_search_ranks_as_the_local_library_and_prints_the_same_json(built, cluster_photos, capsys):
    opts, _, local, _ = built
    queries = sorted(cluster_photos.rglob("img00[0-4].jpg"))
    common = ["-k", str(K), "--json", "--threads", "1"]
    for q in queries:
        [mine] = _cli(capsys, "cluster", "search", str(q), "--library", str(opts.library), *common)
        [theirs] = _cli(capsys, "search", str(q), "--library", str(local), *common)
        assert mine.keys() == theirs.keys() and mine["query"] == theirs["query"]
        assert [r.keys() for r in mine["results"]] == [r.keys() for r in theirs["results"]]
        # HNSW at this size finds the exact top k; scores are the same f16 vectors' inner products
        assert {r["path"] for r in mine["results"]} == {r["path"] for r in theirs["results"]}
        mine_s = {r["path"]: r["score"] for r in mine["results"]}
        assert all(mine_s[r["path"]] == pytest.approx(r["score"], abs=1e-5) for r in theirs["results"])


def test_duplicates_finds_the_local_groups(built, capsys):
    opts, _, local, _ = built
    for threshold in ("0.999", "0.95"):
        [mine] = _cli(capsys, "cluster", "duplicates", "--library", str(opts.library), "--threshold", threshold,
                      "--json")
        [theirs] = _cli(capsys, "duplicates", "--library", str(local), "--threshold", threshold, "--json")
        groups = lambda out: sorted(sorted(m["path"] for m in g["members"]) for g in out["groups"])  # noqa: E731
        assert groups(mine) == groups(theirs) and mine["photos"] == theirs["photos"]
        assert [g["original"] for g in mine["groups"]] == [g["original"] for g in theirs["groups"]]
    assert any("copy-of-img000.jpg" in m["path"] for g in mine["groups"] for m in g["members"])


def test_visual_tokens_and_reranked_scores_equal_the_local_reranker(built, cluster_photos, tiny_vlm, capsys):
    from edgeret.cluster.tokens import ParquetTokens
    from edgeret.rerank.tokens import TokenStore

    opts, _, local, _ = built
    model, mmproj = tiny_vlm
    vlm = ["--vlm", str(model), "--mmproj", str(mmproj), "--threads", "1"]
    [done] = _cli(capsys, "cluster", "encode-tokens", "--library", str(opts.library), *vlm, "--json")
    assert done["visual_tokens_encoded"] == done["visual_tokens_stored"] == N_PHOTOS  # the copy shares its tokens
    assert done["failed"] == 0 and len(done["model_id"]) == 1
    [again] = _cli(capsys, "cluster", "encode-tokens", "--library", str(opts.library), *vlm, "--json")
    assert (again["visual_tokens_encoded"], again["already_stored"]) == (0, N_PHOTOS)
    _cli(capsys, "encode-tokens", "--library", str(local), *vlm, "--json")

    model_id = done["model_id"][0]
    parquet = ParquetTokens(str(opts.library / "tokens"), model_id)
    with Library(local) as lib, TokenStore(local / f"tokens-{model_id}.sqlite", model_id) as store:
        for key, _ in lib.photos()[:6]:
            mine, theirs = parquet.get(lib.catalog.details()[key][5]), store.get(key)
            assert mine.size == theirs.size and mine.grids == theirs.grids
            assert all(np.array_equal(a, b) for a, b in zip(mine.chunks, theirs.chunks, strict=True))

    q = str(next(cluster_photos.rglob("img003.jpg")))
    args = ["-k", "6", "--rerank", "--json", *vlm]
    [mine] = _cli(capsys, "cluster", "search", q, "--library", str(opts.library), *args)
    [theirs] = _cli(capsys, "search", q, "--library", str(local), *args)
    p_mine = {r["path"]: r["mllm"] for r in mine["results"]}
    p_theirs = {r["path"]: r["mllm"] for r in theirs["results"]}
    # the same scorer on the same stored candidate tokens; the local search also reuses the query photo's own
    # stored (f16) tokens where the cluster search encodes the query afresh: equal to f16 rounding
    assert p_mine == pytest.approx(p_theirs, abs=1e-4)
    assert [r["path"] for r in mine["results"]] == [r["path"] for r in theirs["results"]]
    for a, b in zip(mine["results"], theirs["results"], strict=True):
        assert a.keys() == b.keys() and a["final"] == pytest.approx(b["final"], abs=1e-5)


def test_worker_and_resource_failures_are_clear_errors(built, cluster_photos, tiny_vlm, tiny_encoder, capsys,
                                                       tmp_path):
    opts, *_ = built
    model, _ = tiny_vlm
    q = str(next(cluster_photos.rglob("img003.jpg")))
    code = main(["cluster", "search", q, "--library", str(opts.library), "--rerank", "--vlm", str(model),
                 "--mmproj", str(tmp_path / "missing.gguf")])
    err = capsys.readouterr().err
    assert code == 7 and "missing.gguf" in err and "Traceback" not in err  # raised on the actors, reported here
    code = main(["cluster", "index", q, "--library", str(tmp_path / "gpu"), "--encoder", str(tiny_encoder),
                 "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "--device cpu" in err  # no GPU in the local Ray: refused, not waited for


def test_url_sources_are_listed_and_read_through_fsspec(built, cluster_photos, tiny_encoder, tmp_path):
    _, _, local, local_report = built
    opts = ClusterOptions(library=tmp_path / "url-lib", workers=1, threads=1)
    url = f"local://{cluster_photos}"  # any fsspec filesystem: workers copy each object to a temporary file
    report = index([url], opts, str(tiny_encoder), batch_size=8)
    assert report.indexed == local_report.indexed and len(report.failed) == len(BAD)
    assert sorted(r for _, r in report.failed) == sorted(r for _, r in local_report.failed)
    rows = {r["path"]: r["content_hash"] for page in _collection(opts).rows() for r in page}
    with Library(local) as lib:
        hashes = {d[0]: d[5] for d in lib.catalog.details().values()}
    assert rows == {f"local://{p}": h for p, h in hashes.items()}
    assert index([url], opts, str(tiny_encoder)).indexed == 0
