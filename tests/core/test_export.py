"""Exporting results with their scores, and copying / moving photos to a folder without overwriting anything."""

import csv
import json
import math

import pytest

from edgeret.errors import UsageError
from edgeret.export import copy_photos, export_results
from edgeret.query import Result
from edgeret.testing.photos import make_photo, snapshot
from edgeret.verdicts import Thresholds

RESULTS = [Result(3, "/p/a.jpg", 0.91, 0.97, 0.94), Result(1, "/p/b.jpg", 0.88, 0.5, 0.69),
           Result(2, "/p/c.jpg", 0.80, math.nan, 0.80), Result(4, "/p/d.jpg", 0.70, 0.05, 0.375)]


def test_csv_and_json_carry_rank_verdict_and_scores(tmp_path):
    rows = list(csv.DictReader(export_results(RESULTS, tmp_path / "r.csv", reranker="sv").open()))
    assert [r["path"] for r in rows] == ["/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/d.jpg"]
    assert [r["verdict"] for r in rows] == ["Same object", "Maybe", "Could not check", "Different"]
    assert rows[0]["rank"] == "1" and float(rows[0]["p_same"]) == 0.97 and float(rows[1]["final"]) == 0.69
    assert rows[2]["p_same"] == ""  # NaN (not judged) is empty, not "nan"

    doc = json.loads(export_results(RESULTS, tmp_path / "r.json", query="/q.jpg", reranker="mllm",
                                    thresholds=Thresholds(0.9, 0.6)).read_text())
    assert doc["query"] == "/q.jpg" and doc["thresholds"] == {"same": 0.9, "different": 0.6}
    assert [r["verdict"] for r in doc["results"]] == ["Same object", "Different", "Could not check", "Different"]
    assert doc["results"][2]["p_same"] is None


def test_first_stage_only_export_claims_no_verdict(tmp_path):
    unjudged = [Result(1, "/p/a.jpg", 0.9, None, 0.9)]
    doc = json.loads(export_results(unjudged, tmp_path / "r.json").read_text())
    assert doc["reranker"] is None and doc["results"][0]["verdict"] is None
    with pytest.raises(UsageError, match="csv or .json"):
        export_results(unjudged, tmp_path / "r.txt")


def test_copy_never_overwrites_and_move_removes_the_source(tmp_path):
    src = [make_photo(tmp_path / "lib" / "x" / "same.jpg", 1), make_photo(tmp_path / "lib" / "y" / "same.jpg", 2)]
    before = snapshot(tmp_path / "lib")
    done = copy_photos(src, tmp_path / "out")
    assert [d for _, d in done] == [str(tmp_path / "out" / "same.jpg"), str(tmp_path / "out" / "same (2).jpg")]
    assert snapshot(tmp_path / "lib") == before  # copying leaves the library untouched
    assert (tmp_path / "out" / "same (2).jpg").read_bytes() == src[1].read_bytes()

    moved = copy_photos([src[0]], tmp_path / "out", move=True)
    assert moved == [(str(src[0]), str(tmp_path / "out" / "same (3).jpg"))] and not src[0].exists()
    assert copy_photos([tmp_path / "out" / "same.jpg"], tmp_path / "out") == []  # already there
