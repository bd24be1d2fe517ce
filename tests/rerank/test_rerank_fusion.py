import math

import pytest

from edgeret.rerank.fusion import fuse, rank


def test_fuse_is_the_lambda_mix():
    assert fuse(0.8, 0.2) == pytest.approx(0.5)
    assert fuse(0.8, 0.2, lam=1.0) == pytest.approx(0.8)
    assert fuse(0.8, 0.2, lam=0.0) == pytest.approx(0.2)
    assert fuse(0.6, 1.0, lam=0.25) == pytest.approx(0.25 * 0.6 + 0.75 * 1.0)


def test_fuse_nan_counts_as_no_opinion():
    assert fuse(0.8, math.nan) == pytest.approx(0.5 * 0.8 + 0.5 * 0.5)


@pytest.mark.parametrize("lam", [-0.1, 1.5])
def test_fuse_rejects_lambda_outside_unit_interval(lam):
    with pytest.raises(ValueError, match="lambda"):
        fuse(0.5, 0.5, lam)


def test_rank_orders_by_final_then_first_stage_then_index():
    first = [0.9, 0.8, 0.7, 0.7, 0.5]
    p = {0: 0.0, 1: 1.0, 2: 0.5, 3: 0.5, 4: 0.7}  # finals 0.45, 0.9, 0.6, 0.6, 0.6
    out = rank(first, p)
    assert [i for i, _ in out] == [1, 2, 3, 4, 0]
    assert out[0][1] == pytest.approx(0.9)


def test_rank_keeps_first_stage_for_unscored_candidates():
    out = rank([0.9, 0.1], {1: 1.0}, lam=0.5)
    assert out == [(0, 0.9), (1, pytest.approx(0.55))]
