"""Metric code against hand-computed examples: AP, AP@k, R@k, P@k, ties, queries without positives, summaries."""

import math

import pytest

from edgeret.evaluate import EvalReport, GroundTruth, GTImage, QueryResult, ranking_metrics, rerank_top, summarize
from edgeret.library import Hit
from edgeret.metrics import average_precision, precision_at, recall_at


def test_average_precision_hand_computed():
    # positives at ranks 1, 3, 6 of 6 (3 positives): (1/1 + 2/3 + 3/6) / 3
    ranked = ["p1", "n1", "p2", "n2", "n3", "p3"]
    assert average_precision(ranked, {"p1", "p2", "p3"}) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    # a positive never retrieved counts as precision 0: (1/2) / 2
    assert average_precision(["n1", "p1", "n2"], {"p1", "p_missing"}) == pytest.approx(0.25)
    assert average_precision(["p1", "p2"], {"p1", "p2"}) == 1.0
    assert average_precision(["n1", "n2"], {"p1"}) == 0.0


def test_average_precision_at_k_normalises_by_min_k_positives():
    ranked = ["p1", "n1", "p2", "n2", "p3"]
    # top 2 holds one positive out of min(2, 3) = 2 possible: (1/1) / 2
    assert average_precision(ranked, {"p1", "p2", "p3"}, k=2) == pytest.approx(0.5)
    # top 3: (1 + 2/3) / 3
    assert average_precision(ranked, {"p1", "p2", "p3"}, k=3) == pytest.approx((1 + 2 / 3) / 3)
    # one positive, k larger than the list: 1/2 / min(10, 1)
    assert average_precision(["n1", "p1"], {"p1"}, k=10) == pytest.approx(0.5)


def test_recall_and_precision_at_k():
    ranked = ["n1", "n2", "p1", "n3", "p2", "n4", "n5", "n6", "n7", "n8", "p3"]
    pos = {"p1", "p2", "p3"}
    assert recall_at(ranked, pos, 1) == 0.0
    assert recall_at(ranked, pos, 3) == 1.0
    assert precision_at(ranked, pos, 5) == pytest.approx(2 / 5)
    assert precision_at(ranked, pos, 10) == pytest.approx(2 / 10)  # p3 is 11th
    # P@10 divides by 10 even when fewer than 10 results exist (the list is the whole database)
    assert precision_at(["p1", "n1"], pos, 10) == pytest.approx(0.1)


def test_query_without_positives_is_nan_and_left_out_of_means():
    m = ranking_metrics(["a", "b"], set(), k=5)
    assert math.isnan(m["mAP"]) and math.isnan(m["mAP@k"])
    rows = [m, ranking_metrics(["p", "n"], {"p"}, 5), ranking_metrics(["n", "p"], {"p"}, 5)]
    s = summarize(rows)
    assert s["n"] == 3
    assert s["mAP"] == pytest.approx((1 + 0.5) / 2)  # NaN left out, not counted as 0
    assert summarize([])["n"] == 0 and math.isnan(summarize([])["mAP"])


def test_ranking_metrics_hand_computed():
    ranked = ["n1", "p1", "n2", "n3", "p2"]
    m = ranking_metrics(ranked, {"p1", "p2"}, k=3)
    assert m == pytest.approx({"mAP": (1 / 2 + 2 / 5) / 2, "mAP@k": (1 / 2) / 2, "R@1": 0.0, "R@5": 1.0,
                               "P@10": 2 / 10})


class _FixedP:
    """A deterministic re-ranker: P given per path (pure Python, used to pin the fused order and its ties)."""

    name = "fixed"

    def __init__(self, p):
        self.p = p

    def candidates(self, hits):
        return [h.path for h in hits]

    def score(self, query, candidates, cancel=None, on_encoded=None):
        for i, path in enumerate(candidates):
            if cancel is not None and cancel():
                return
            yield i, self.p[path]


def test_ties_break_on_first_stage_then_order_and_metrics_follow():
    # First stage: n1 .8, p1 .6, n2 .6 (tie with p1, but later), p2 .4.
    hits = [Hit(1, "n1", 0.8), Hit(2, "p1", 0.6), Hit(3, "n2", 0.6), Hit(4, "p2", 0.4)]
    # λ=0.5: n1 .5*.8+.5*.2=.5, p1 .3+.2=.5, n2 .3+.2=.5, p2 .2+.3=.5: all fused scores tie at 0.5.
    p = {"n1": 0.2, "p1": 0.4, "n2": 0.4, "p2": 0.6}
    order = rerank_top(hits, None, _FixedP(p), lam=0.5)
    assert order == ["n1", "p1", "n2", "p2"]  # ties -> higher first stage -> earlier first-stage position
    m = ranking_metrics(order, {"p1", "p2"}, k=4)
    assert m["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["R@1"] == 0.0 and m["R@5"] == 1.0


def test_rerank_moves_positive_up_hand_computed():
    hits = [Hit(1, "n1", 0.9), Hit(2, "n2", 0.8), Hit(3, "p1", 0.7)]
    order = rerank_top(hits, None, _FixedP({"n1": 0.0, "n2": 0.1, "p1": 1.0}), lam=0.5)
    # finals: n1 .45, n2 .45, p1 .85 -> p1 first; n1/n2 tie at .45 -> n1 (higher first stage) before n2
    assert order == ["p1", "n1", "n2"]
    assert ranking_metrics(order, {"p1"}, 3)["mAP"] == 1.0


def test_rerank_top_raises_cancelled_when_stopped_midway():
    from edgeret.errors import Cancelled

    hits = [Hit(i, f"x{i}", 1 - i / 10) for i in range(5)]
    with pytest.raises(Cancelled):
        rerank_top(hits, None, _FixedP({h.path: 0.5 for h in hits}), 0.5, cancel=lambda: True)


def test_report_slices_and_summary():
    from edgeret.evaluate import Query

    def qr(kind, gtype, first, rer):
        q = Query(f"/q/{kind}{first}", "g", kind, gtype, frozenset({"x"}))
        return QueryResult(q, ranking_metrics(*first), ranking_metrics(*rer))

    rep = EvalReport(k=2, lam=0.5, reranker="fixed", library_size=10)
    rep.results = [
        qr("real", "real_multiview", (["x", "n"], {"x"}, 2), (["x", "n"], {"x"}, 2)),
        qr("crop", "synthetic", (["n", "x"], {"x"}, 2), (["x", "n"], {"x"}, 2)),
        qr("crop", "synthetic", (["n", "n2", "x"], {"x"}, 2), (["n", "x"], {"x"}, 2)),
    ]
    s = rep.summary()
    assert list(s) == ["overall", "group_type=real_multiview", "group_type=synthetic", "kind=crop", "kind=real"]
    assert s["overall"]["first_stage"]["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert s["overall"]["reranked"]["mAP"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    assert s["kind=crop"]["first_stage"]["n"] == 2
    assert s["kind=crop"]["reranked"]["R@1"] == pytest.approx(0.5)
    d = rep.as_dict()
    assert d["metrics"]["overall"]["first_stage"]["P@10"] == pytest.approx(0.1)
    assert len(d["per_query"]) == 3


def test_ground_truth_queries_exclude_self_and_keep_singletons():
    gt = GroundTruth([GTImage("/a", "g1", "real", "t"), GTImage("/b", "g1", "real", "t"),
                      GTImage("/c", "g2", "real", "t"), GTImage("/d", None, "distractor", None)], "mem")
    qs = {q.path: q for q in gt.queries()}
    assert set(qs) == {"/a", "/b", "/c"}
    assert qs["/a"].positives == {"/b"} and qs["/b"].positives == {"/a"}
    assert qs["/c"].positives == frozenset()
