"""Ground-truth loading (both formats, missing images) and `edgeret eval` end to end with the tiny encoder."""

import json
import shutil

import pytest
from PIL import Image

from edgeret.decode import decode
from edgeret.evaluate import (
    FOLDER_KIND,
    GroundTruthError,
    evaluate,
    library_paths,
    load_ground_truth,
    ranking_metrics,
)
from edgeret.library import Library


def eval_main(argv: list[str]) -> int:
    """`edgeret eval ...`."""
    from edgeret.cli import main

    return main(["eval", *argv])


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """Folder-per-instance photos: 3 objects of 3 views (textured, warped), a singleton and 2 top-level distractors.

    Each object holds an exact byte copy of its first view, so the first stage must rank that copy first.
    """
    from edgeret.testing.photos import textured, warped

    root = tmp_path_factory.mktemp("gt") / "instances"
    for obj in range(3):
        base = textured(10 + obj, size=(320, 240))
        d = root / f"object{obj}"
        d.mkdir(parents=True)
        base.save(d / "a.jpg", quality=90)
        shutil.copyfile(d / "a.jpg", d / "a_copy.jpg")
        warped(base, angle=8 + 4 * obj).save(d / "b.jpg", quality=85)
    (root / "lonely").mkdir()
    textured(40, size=(320, 240)).save(root / "lonely" / "only.jpg", quality=90)
    textured(50, size=(320, 240)).save(root / "distractor1.jpg", quality=90)
    textured(51, size=(320, 240)).save(root / "distractor2.png")
    return root


@pytest.fixture(scope="module")
def indexed(instances, tiny_encoder, tmp_path_factory):
    lib = tmp_path_factory.mktemp("lib") / "lib"
    with Library(lib, writable=True) as library:
        report = library.index([instances], encoder_spec=str(tiny_encoder), threads=1)
    assert report.indexed == 12 and not report.failed
    return lib


def test_folder_layout(instances):
    gt = load_ground_truth(instances)
    groups = {im.path.split("/")[-1]: im.group for im in gt.images if im.group}
    assert len(gt.images) == 12
    assert sum(im.group is None for im in gt.images) == 2
    assert {im.kind for im in gt.images} == {FOLDER_KIND, "distractor"}
    assert groups["only.jpg"] == "lonely"
    qs = gt.queries()
    assert len(qs) == 10
    assert sum(not q.positives for q in qs) == 1


def test_json_layout_relative_paths_group_types_and_kinds(tmp_path):
    (tmp_path / "images").mkdir()
    raw = {
        "images": [
            {"file": "images/x.jpg", "group": "g", "kind": "real"},
            {"file": "images/y.jpg", "group": "g", "kind": "synthetic:crop_zoom"},
            {"file": str(tmp_path / "abs.jpg"), "group": None, "kind": "distractor"},
        ],
        "groups": [{"id": "g", "type": "real_multiview"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(raw))
    gt = load_ground_truth(tmp_path / "gt.json")
    assert [im.path for im in gt.images] == [str(tmp_path / "images/x.jpg"), str(tmp_path / "images/y.jpg"),
                                             str(tmp_path / "abs.jpg")]
    assert [im.group_type for im in gt.images] == ["real_multiview", "real_multiview", None]
    q = {q.kind: q for q in gt.queries()}
    assert q["synthetic:crop_zoom"].positives == {str(tmp_path / "images/x.jpg")}


@pytest.mark.parametrize("content", ["{not json", '{"images": [{"group": "g"}]}', "[1, 2]"])
def test_bad_ground_truth_is_a_clear_error(tmp_path, content):
    (tmp_path / "gt.json").write_text(content)
    with pytest.raises(GroundTruthError, match="cannot read ground truth"):
        load_ground_truth(tmp_path / "gt.json")
    with pytest.raises(GroundTruthError, match="does not exist"):
        load_ground_truth(tmp_path / "nope.json")
    with pytest.raises(GroundTruthError, match="no subfolders"):
        load_ground_truth(tmp_path)


def test_missing_images_are_named(indexed, instances, tmp_path, capsys):
    raw = {"images": [{"file": str(instances / "object0" / "a.jpg"), "group": "g", "kind": "real"},
                      {"file": str(tmp_path / "not_indexed_1.jpg"), "group": "g", "kind": "real"},
                      {"file": str(tmp_path / "not_indexed_2.jpg"), "group": None, "kind": "distractor"}]}
    (tmp_path / "gt.json").write_text(json.dumps(raw))
    with Library(indexed) as lib, pytest.raises(GroundTruthError) as e:
        library_paths(lib, load_ground_truth(tmp_path / "gt.json"))
    assert "2 image(s)" in str(e.value)
    assert "not_indexed_1.jpg" in str(e.value) and "not_indexed_2.jpg" in str(e.value)
    assert "object0" not in str(e.value)
    assert eval_main(["--library", str(indexed), "--gt", str(tmp_path / "gt.json")]) == 1
    assert "not_indexed_1.jpg" in capsys.readouterr().err


def test_first_stage_matches_an_independent_search(indexed, instances, tiny_encoder):
    gt = load_ground_truth(instances)
    progress = []
    with Library(indexed) as lib:
        enc = lib.load_encoder(str(tiny_encoder), threads=1)
        rep = evaluate(lib, gt, enc, k=5, progress=lambda d, t, p: progress.append((d, t)))
        assert len(rep.results) == 9 and len(rep.skipped_no_positives) == 1
        assert rep.skipped_no_positives[0].endswith("only.jpg")
        assert progress[0] == (0, 9) and progress[-1] == (9, 9)
        for r in rep.results:
            q = r.query
            image = decode(q.path, min_side=lib.decode_side(enc))  # as `edgeret search` decodes
            hits = lib.search_images([image], enc, 100)[0]
            ranked = [h.path for h in hits if h.path != q.path]
            assert len(ranked) == 11  # the whole library but the query
            assert r.first_stage == pytest.approx(ranking_metrics(ranked, q.positives, 5))
    by_name = {r.query.path.rsplit("/", 2)[-1]: r for r in rep.results if "object0" in r.query.path}
    # a byte copy has the query's own embedding: with the query excluded it must come first
    assert by_name["a.jpg"].first_stage["R@1"] == 1.0
    assert by_name["a_copy.jpg"].first_stage["R@1"] == 1.0


def test_cancel_keeps_finished_queries(indexed, instances, tiny_encoder):
    done = []
    with Library(indexed) as lib:
        enc = lib.load_encoder(str(tiny_encoder), threads=1)
        rep = evaluate(lib, load_ground_truth(instances), enc, progress=lambda d, t, p: done.append(d),
                       cancel=lambda: len(done) >= 3)
    assert rep.cancelled and len(rep.results) == 3


def test_eval_cli_with_sv_json_and_plots(indexed, instances, tmp_path, capsys):
    pytest.importorskip("cv2")
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    rc = eval_main(["--library", str(indexed), "--gt", str(instances), "--reranker", "sv", "-k", "11",
                    "--json", "--plots", str(plots), "--threads", "1"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["queries"] == 9 and rep["skipped_no_positives"] == 1 and rep["reranker"] == "sv"
    overall = rep["metrics"]["overall"]
    # every view of an object verifies against the others, no cross-object pair does: sv makes the ranking perfect
    assert overall["reranked"]["mAP"] == pytest.approx(1.0)
    assert overall["reranked"]["R@1"] == 1.0
    assert overall["first_stage"]["mAP"] < 1.0  # the random tiny encoder does not get there alone
    assert set(rep["metrics"]) >= {"overall", f"kind={FOLDER_KIND}", f"group_type={FOLDER_KIND}"}
    assert len(rep["per_query"]) == 9 and "reranked" in rep["per_query"][0]
    for name in ("map_by_kind.png", "map_by_group_type.png", "metrics_overall.png"):
        with Image.open(plots / name) as im:
            assert im.format == "PNG" and im.width > 300


def test_eval_cli_text_report(indexed, instances, capsys):
    assert eval_main(["--library", str(indexed), "--gt", str(instances), "-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "9 queries, 1 skipped (no positives)" in out
    assert "mAP@5" in out and "kind=instance" in out and "overall" in out


def test_eval_cli_usage_errors(indexed, instances, capsys):
    with pytest.raises(SystemExit) as e:  # argparse refuses -k 0 itself: exit 2 with a message
        eval_main(["--library", str(indexed), "--gt", str(instances), "-k", "0"])
    assert e.value.code == 2 and "out of range" in capsys.readouterr().err
    assert eval_main(["--library", str(indexed), "--gt", str(instances), "--lambda", "1.5"]) == 2


def test_rerank_without_an_installed_mllm_is_a_clear_error(indexed, instances, capsys):
    """--rerank alone means the MLLM; with no model installed the user is told how to get one, before any query."""
    rc = eval_main(["--library", str(indexed), "--gt", str(instances), "--rerank"])
    assert rc not in (0, 1)  # a specific exit code (model missing), not a crash or a generic failure
    err = capsys.readouterr().err
    assert "not installed" in err and "edgeret models pull" in err
