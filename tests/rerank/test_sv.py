"""The sv re-ranker on real geometry: a warped, cropped copy of a textured image verifies; an unrelated one does not."""

import math

import numpy as np
import pytest
from PIL import Image

from edgeret.library import Hit
from edgeret.query import run_query

cv2 = pytest.importorskip("cv2")

from edgeret.rerank.sv import SvReranker, inliers_to_p  # noqa: E402
from edgeret.testing.photos import textured, warped  # noqa: E402


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sv")
    base = textured(1)
    paths = {"query": d / "query.jpg", "same": d / "same.jpg", "other": d / "other.jpg", "other2": d / "other2.png"}
    base.save(paths["query"], quality=90)
    warped(base).save(paths["same"], quality=85)
    textured(2).save(paths["other"], quality=90)
    textured(3).save(paths["other2"])
    return paths


@pytest.fixture(scope="module")
def sv():
    return SvReranker(threads=2)


def _hits(paths):
    return [Hit(i + 1, str(p), 0.5) for i, p in enumerate(paths)]


def test_inlier_map_is_monotone_and_bounded():
    ps = [inliers_to_p(n) for n in range(0, 200, 3)]
    assert all(0.0 <= p <= 1.0 for p in ps)
    assert ps == sorted(ps)
    assert inliers_to_p(0) < 0.02 and inliers_to_p(12) == pytest.approx(0.5) and inliers_to_p(40) > 0.99


def test_warped_copy_scores_high_unrelated_low(sv, pair_files):
    query = Image.open(pair_files["query"]).convert("RGB")
    cands = [pair_files["other"], pair_files["same"], pair_files["other2"]]
    p = dict(sv.score(query, sv.candidates(_hits(cands))))
    assert set(p) == {0, 1, 2}
    assert p[1] > 0.9, p
    assert p[0] < 0.3 and p[2] < 0.3, p
    q = sv.features(query)
    assert sv.inliers(q, sv.features(Image.open(pair_files["same"]).convert("RGB"))) >= 25


def test_orb_fallback_also_verifies(pair_files):
    orb = SvReranker(method="orb")
    query = Image.open(pair_files["query"]).convert("RGB")
    p = dict(orb.score(query, orb.candidates(_hits([pair_files["same"], pair_files["other"]]))))
    assert p[0] > p[1]
    assert p[0] > 0.5


def test_undecodable_candidate_yields_nan_and_run_goes_on(sv, pair_files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    gone = tmp_path / "deleted.jpg"
    query = Image.open(pair_files["query"]).convert("RGB")
    p = list(sv.score(query, sv.candidates(_hits([bad, gone, pair_files["same"]]))))
    assert [i for i, _ in p] == [0, 1, 2]
    assert math.isnan(p[0][1]) and math.isnan(p[1][1]) and p[2][1] > 0.9


def test_cancel_stops_between_candidates(sv, pair_files):
    query = Image.open(pair_files["query"]).convert("RGB")
    seen = []
    cands = sv.candidates(_hits([pair_files["same"], pair_files["other"], pair_files["other2"]]))
    for i, _ in sv.score(query, cands, cancel=lambda: len(seen) >= 1):
        seen.append(i)
    assert seen == [0]


def test_query_features_computed_once_and_candidates_cached(pair_files):
    sv = SvReranker()
    calls = []
    real = sv.features

    def counting(image):
        calls.append(image.size)
        return real(image)

    sv.features = counting
    query = Image.open(pair_files["query"]).convert("RGB")
    hits = _hits([pair_files["same"], pair_files["other"]])
    list(sv.score(query, sv.candidates(hits)))
    assert len(calls) == 3  # the query once + two candidates
    list(sv.score(query, sv.candidates(hits)))
    assert len(calls) == 4  # candidates come from the cache on the next query


def test_sv_through_run_query_moves_the_true_match_first(sv, pair_files):
    query = Image.open(pair_files["query"]).convert("RGB")
    hits = [Hit(1, str(pair_files["other"]), 0.9), Hit(2, str(pair_files["other2"]), 0.85),
            Hit(3, str(pair_files["same"]), 0.6)]
    final = list(run_query(hits, query, sv, lam=0.5))[-1]
    assert final[0].path == str(pair_files["same"])
    assert final[0].p_same > 0.9


def test_mllm_plus_sv_mean_averages_and_skips_nan(sv, pair_files, tmp_path):
    from edgeret.rerankers import MeanReranker

    class Const:
        name = "const"

        def candidates(self, hits):
            return [h.path for h in hits]

        def score(self, query, candidates, cancel=None, on_encoded=None):
            for i, _ in enumerate(candidates):
                yield i, 0.0

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"junk")
    both = MeanReranker([sv, Const()])
    assert both.name == "sv+const"
    query = Image.open(pair_files["query"]).convert("RGB")
    p = dict(both.score(query, both.candidates(_hits([pair_files["same"], bad]))))
    sv_p = dict(sv.score(query, sv.candidates(_hits([pair_files["same"]]))))[0]
    assert p[0] == pytest.approx(sv_p / 2)
    assert p[1] == 0.0  # sv could not judge it: the mean of what is known


def test_inlier_matches_land_on_the_same_points_in_each_photo(sv):
    """The matches the compare view draws: in each photo's own pixels, also for photos above max_side."""
    big = textured(4, size=(640, 480)).resize((1600, 1200), Image.Resampling.BICUBIC)  # downscaled for features
    crop = big.crop((200, 100, 1400, 1000))  # the same content shifted by (-200, -100), 1200 px wide
    m = sv.matches(big, crop)
    assert m.inliers >= 25 and m.query_xy.shape == m.candidate_xy.shape == (m.inliers, 2)
    assert m.p_same == pytest.approx(inliers_to_p(m.inliers))
    err = np.linalg.norm(m.query_xy - m.candidate_xy - [200, 100], axis=1)
    # RANSAC's tolerance (20 px at the features' scale) admits a stray match or two; the rest sit on the spot
    assert np.median(err) < 1.5 and (err < 5).mean() > 0.9
    assert m.query_xy[:, 0].max() > 1024  # query coordinates are in the 1600 px photo, not the downscaled one

    half = big.resize((800, 600), Image.Resampling.BICUBIC)
    m2 = SvReranker().matches(big, half)
    err2 = np.linalg.norm(m2.query_xy / 2 - m2.candidate_xy, axis=1)
    assert m2.inliers >= 25 and np.median(err2) < 1.5 and (err2 < 4).mean() > 0.9

    other = SvReranker().matches(big, textured(5, size=(640, 480)))
    assert other.inliers == sv.inliers(sv.features(big), sv.features(textured(5, size=(640, 480)))) < 12


def test_a_boxed_query_matches_only_its_region(sv, pair_files, tmp_path):
    """The object pasted into another scene: boxed, its region verifies against the object, not the scene."""
    from edgeret.box import Box, RegionQuery

    scene = textured(2, size=(960, 720))
    scene.paste(textured(1), (420, 300))
    boxed = RegionQuery(scene, Box(420, 300, 900, 660))
    background = tmp_path / "background.jpg"
    textured(2, size=(960, 720)).crop((0, 0, 400, 700)).save(background, quality=90)
    hits = _hits([pair_files["same"], background])
    whole = dict(sv.score(scene, sv.candidates(hits)))
    region = dict(sv.score(boxed, sv.candidates(hits)))
    assert whole[1] > 0.9, whole  # the whole scene shares its background with the second candidate
    assert region[0] > 0.9 and region[1] < 0.3, region


def test_a_boxed_querys_matches_are_its_regions_in_the_whole_photos_pixels(sv):
    """The compare view draws a boxed query's matches on the whole photo: the region's points, moved by its corner."""
    from edgeret.box import Box, RegionQuery

    photo = textured(4, size=(640, 480))
    box = Box(160, 120, 560, 420)
    candidate = photo.crop((box.x0, box.y0, box.x1, box.y1))
    boxed = sv.matches(RegionQuery(photo, box), candidate)
    alone = sv.matches(candidate, candidate)
    assert boxed.inliers == alone.inliers >= 25
    assert np.allclose(boxed.query_xy, alone.query_xy + [box.x0, box.y0])
    inside = (boxed.query_xy >= [box.x0, box.y0]) & (boxed.query_xy <= [box.x1, box.y1])
    assert inside.all()
