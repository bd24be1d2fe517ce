"""Plain verdicts from P(same): the thresholds, the states before and without judging, where matches end."""

import math

import pytest

from edgeret.verdicts import DIFFERENT_BELOW, SAME_AT, Thresholds, Verdict, matches_end


def test_verdict_bands_at_the_default_thresholds():
    t = Thresholds()
    assert (t.same, t.different) == (SAME_AT, DIFFERENT_BELOW)
    assert t.verdict(1.0) is t.verdict(SAME_AT) is Verdict.SAME
    assert t.verdict(SAME_AT - 1e-9) is t.verdict(DIFFERENT_BELOW) is Verdict.MAYBE
    assert t.verdict(DIFFERENT_BELOW - 1e-9) is t.verdict(0.0) is Verdict.DIFFERENT
    assert t.verdict(None) is Verdict.UNCHECKED and t.verdict(math.nan) is Verdict.UNJUDGED
    assert Verdict.SAME.value == "Same object" and Verdict.UNCHECKED.value == "Not checked yet"


def test_thresholds_are_settings_and_refuse_nonsense():
    strict = Thresholds(same=0.95, different=0.5)
    assert strict.verdict(0.9) is Verdict.MAYBE and strict.verdict(0.4) is Verdict.DIFFERENT
    for bad in ((0.3, 0.6), (1.2, 0.1), (0.5, -0.1)):
        with pytest.raises(ValueError):
            Thresholds(*bad)


def test_matches_end_after_the_last_same_object():
    t = Thresholds()
    assert matches_end([0.99, 0.9, 0.5, 0.1], t) == 2
    assert matches_end([0.99, 0.5, 0.85, 0.1], t) == 3  # a Maybe ranked between two matches stays above the line
    assert matches_end([0.5, 0.1], t) == 0  # no match at all: the line sits before the first result
    assert matches_end([0.99, None], t) is None  # still judging: the line could move
    assert matches_end([], t) is None
    assert matches_end([math.nan, 0.9], t) == 2
