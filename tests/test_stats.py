"""avelib.eval.stats: bootstrap CIs over test videos and seeds, paired comparisons of two runs."""

from __future__ import annotations

import numpy as np
from scipy import stats as st
import pytest

from avelib.eval import stats


def _scores(seeds: int, videos: int, level: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(level + 0.15 * rng.standard_normal((seeds, videos)), 0, 1).round(1)  # [S,N] like c/10


def test_ci_holds_the_mean_is_seeded_and_narrows_with_more_videos():
    small, large = _scores(3, 40, 0.8), _scores(3, 400, 0.8)
    ci = stats.accuracy_ci(small)
    assert ci["ci"][0] < ci["mean"] < ci["ci"][1] and (ci["seeds"], ci["videos"]) == (3, 40)
    assert stats.accuracy_ci(small) == ci  # same scores, same numbers
    width = lambda c: c["ci"][1] - c["ci"][0]  # noqa: E731
    assert width(stats.accuracy_ci(large)) < width(ci) / 2  # ~ 1/sqrt(10)
    assert stats.accuracy_ci(np.full((2, 5), 0.7))["ci"] == pytest.approx([0.7, 0.7])


def test_seed_spread_widens_the_interval():
    """A run whose seeds disagree is less certain than one whose seeds agree on the same videos."""
    base = _scores(1, 200, 0.8)
    agree = np.repeat(base, 3, axis=0)
    disagree = np.clip(agree + np.array([[-0.1], [0.0], [0.1]]), 0, 1)
    w = lambda s: np.diff(stats.accuracy_ci(s)["ci"])[0]  # noqa: E731
    assert w(disagree) > 1.5 * w(agree)


def test_paired_difference_sees_a_constant_shift_through_video_noise():
    b = np.repeat(_scores(1, 20, 0.6), 3, axis=0)  # seeds that agree: only the videos vary
    a = b + 0.1  # better by 1 second on every video
    d = stats.paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.1) and d["ci"] == pytest.approx([0.1, 0.1])
    assert d["verdict"] == "a" and d["p_value"] < 0.001
    assert stats.paired_difference(b, a)["verdict"] == "b"
    # unpaired, the same two runs would overlap: their own CIs are each wider than the shift
    ca, cb = stats.accuracy_ci(a)["ci"], stats.accuracy_ci(b)["ci"]
    assert ca[0] < cb[1]


def test_identical_runs_are_not_resolved_and_shapes_must_match():
    a = _scores(3, 30, 0.7)
    same = stats.paired_difference(a, a.copy())
    assert same["difference"] == 0 and same["p_value"] == 1.0 and same["verdict"] == "not resolved"
    noisy = stats.paired_difference(a, _scores(3, 30, 0.7, seed=1))
    assert noisy["ci"][0] < 0 < noisy["ci"][1] and noisy["verdict"] == "not resolved"
    with pytest.raises(ValueError, match="same test videos"):
        stats.paired_difference(a, a[:, :10])


def test_direction_and_run_scores():
    assert [stats.direction(c) for c in ([0.1, 0.2], [-0.2, -0.1], [-0.1, 0.1])] == [1, -1, 0]
    run = {"test_correct_seconds": [[10, 5], [9, 0]]}
    assert stats.run_scores(run).tolist() == [[1.0, 0.5], [0.9, 0.0]]
    with pytest.raises(KeyError, match="rerun the stage"):
        stats.run_scores({})
    with pytest.raises(ValueError, match="seeds, videos"):
        stats.per_video_accuracy([1, 2])


def test_p_and_interval_come_from_one_resampling():
    """A permutation p over videos beside a bootstrap CI over videos and seeds told different stories (p 0.002
    with a CI holding zero); now p < 1 - confidence exactly when the interval excludes zero, up to the +1."""
    rng = np.random.default_rng(3)
    agree = 0
    for shift in np.linspace(0.0, 0.06, 13):
        a = rng.uniform(0, 1, (5, 60)) + shift + rng.normal(0, 0.03, (5, 1))  # seed effects widen the CI
        out = stats.paired_difference(a, rng.uniform(0, 1, (5, 60)), resamples=2000)
        agree += (out["p_value"] < 0.05) == (out["verdict"] != "not resolved")
    assert agree == 13
    same = stats.paired_difference(np.ones((2, 3)), np.ones((2, 3)))
    assert same["p_value"] == 1.0


def test_tower_runs_that_disagree_widen_the_interval_and_one_run_is_never_resolved():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.6, (3, 200))  # [S,N]
    agree = [base + 0.1, base + 0.1, base + 0.1], [base, base, base]
    disagree = [base + 0.3, base - 0.1, base + 0.1], [base, base, base]
    same = stats.tower_difference(*agree)
    spread = stats.tower_difference(*disagree)
    assert same["tower_runs"] == spread["tower_runs"] == 3
    assert same["difference"] == pytest.approx(spread["difference"]) == pytest.approx(0.1)
    assert same["verdict"] == "a" and same["p_value"] < 0.01
    assert spread["ci"][1] - spread["ci"][0] > 5 * (same["ci"][1] - same["ci"][0])  # the runs' spread counts
    assert spread["per_tower_run"] == pytest.approx([0.3, -0.1, 0.1])
    one = stats.tower_difference([base + 0.1], [base])
    plain = stats.paired_difference(base + 0.1, base)
    assert one["verdict"] == stats.ONE_TOWER_RUN and one["ci"] == plain["ci"] and one["tower_runs"] == 1
    assert stats.tower_difference(*agree) == same  # seeded
    with pytest.raises(ValueError, match="same tower runs"):
        stats.tower_difference([base, base], [base])


def test_few_tower_runs_give_the_student_t_interval_of_their_differences():
    # no spread within a run: the per-run differences are all there is, and their classic t-interval is the answer
    per_run = np.array([0.05, 0.12, -0.02, 0.09, 0.15, 0.01])
    ones = np.ones((2, 30))  # [S,N]
    out = stats.tower_difference([ones * (0.5 + d) for d in per_run], [ones * 0.5] * len(per_run))
    lo, hi = st.t.interval(0.95, len(per_run) - 1, loc=per_run.mean(), scale=st.sem(per_run))
    assert out["ci"] == pytest.approx([lo, hi], abs=0.002)
    assert out["p_value"] == pytest.approx(st.ttest_1samp(per_run, 0).pvalue, rel=0.1)
    assert out["verdict"] == "not resolved"  # a percentile bootstrap over these six runs says "a"
