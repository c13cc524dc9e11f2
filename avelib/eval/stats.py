"""Uncertainty of test accuracies: 95 % confidence intervals and paired comparisons.

A run's scores are a matrix [S,N]: the accuracy of each of N test videos under each of S seeds.
Both sources of spread count: which test videos were drawn and which training seed ran. The
intervals therefore come from a crossed bootstrap: each draw resamples the N videos and,
independently, the S seeds (scipy's `bootstrap` resamples one axis only, so this one draw is ours).
Two runs on the same test videos are compared **paired**: a draw uses the same videos for both and
each run's own resampled seeds. A comparison's p-value comes from the same draws as its interval (the share
of draws on the far side of zero, two-sided), so the two never tell different stories. Two tower sets (or features against the towers' embeddings)
are compared across their tower runs, each run's scores [S,N], the runs resampled too (`tower_difference`);
with few runs, that bootstrap alone is too narrow, so its standard error gets the few-cluster correction.
Everything is seeded: same scores, same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import stdtr, stdtrit  # Student-t CDF and quantile; scipy.stats costs ~1 s of import a process

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0


def per_video_accuracy(correct_seconds: Sequence[Sequence[int]], seconds: int = 10) -> np.ndarray:
    """Correct seconds per (seed, test video) int [S,N] -> accuracy float [S,N]."""
    counts = np.asarray(correct_seconds, dtype=np.float64)
    if counts.ndim != 2 or counts.size == 0:
        raise ValueError(f"expected correct-second counts [seeds, videos], got shape {counts.shape}")
    return counts / seconds


def _draws(n_seeds: int, n_videos: int, rng: np.random.Generator, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, n_seeds, (resamples, n_seeds)), rng.integers(0, n_videos, (resamples, n_videos))


def _resampled_means(scores: np.ndarray, seeds: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Mean of scores[seeds[b]][:, videos[b]] for each draw b -> [B] (via per-seed video means)."""
    # mean over a resampled grid = mean over seeds of each seed's mean over the resampled videos
    per_seed = np.stack([scores[:, v].mean(axis=1) for v in videos])  # [B,S]
    return np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)  # [B]


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def accuracy_ci(scores: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                seed: int = SEED) -> dict[str, Any]:
    """{mean, ci: [lo, hi], confidence, seeds, videos} of a run's scores [S,N]."""
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    seeds, videos = _draws(*scores.shape, rng, resamples)
    lo, hi = _interval(_resampled_means(scores, seeds, videos), confidence)
    return {"mean": float(scores.mean()), "ci": [lo, hi], "confidence": confidence,
            "seeds": int(scores.shape[0]), "videos": int(scores.shape[1])}


def direction(ci: Sequence[float]) -> int:
    """+1 / -1 when an interval of a difference lies above / below zero, 0 when it holds zero."""
    lo, hi = ci
    return 1 if lo > 0 else -1 if hi < 0 else 0


def verdict(ci: Sequence[float]) -> str:
    """The verdict of a difference a - b from its interval: "a", "b" or "not resolved"."""
    return {1: "a", -1: "b", 0: "not resolved"}[direction(ci)]


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                      seed: int = SEED) -> dict[str, Any]:
    """a - b on the same test videos: {difference, ci, p_value, verdict}; scores [Sa,N] and [Sb,N].

    verdict: "a" / "b" when the interval lies above / below zero, else "not resolved".
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired comparison needs the same test videos, got {a.shape[1]} and {b.shape[1]}")
    rng = np.random.default_rng(seed)
    seeds_a, videos = _draws(a.shape[0], a.shape[1], rng, resamples)
    seeds_b = rng.integers(0, b.shape[0], (resamples, b.shape[0]))
    diffs = _resampled_means(a, seeds_a, videos) - _resampled_means(b, seeds_b, videos)  # [B]
    lo, hi = _interval(diffs, confidence)
    return {"difference": float(a.mean() - b.mean()), "ci": [lo, hi], "p_value": bootstrap_p(diffs),
            "confidence": confidence, "verdict": verdict((lo, hi))}


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided p of a difference from its bootstrap draws [B]: twice the share of draws on the far side of
    zero, counted as (k + 1) / (B + 1) so that no finite resampling claims p = 0. It is below 1 - confidence
    about when the percentile interval of the same draws excludes zero."""
    if not diffs.any():
        return 1.0
    far = min(int((diffs <= 0).sum()), int((diffs >= 0).sum()))
    return min(1.0, 2 * (far + 1) / (len(diffs) + 1))


ONE_TOWER_RUN = "one tower run: not resolvable"


def tower_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray], confidence: float = CONFIDENCE,
                     resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """a - b between tower sets, or of features against the towers' own embeddings, paired by tower run:
    a[k] and b[k] are the scores [S,N] of tower run k (one pretraining and one fine-tuning, avelib.stages.tower_runs).

    One run a side: paired_difference, whose CI resamples videos and seeds but never the towers' training, so
    its verdict is ONE_TOWER_RUN. Several: each draw resamples the tower runs (the same runs for both sides),
    then each drawn run's seeds (each side its own) and the videos (shared); CI and p take that bootstrap's
    standard error with the few-runs correction (`_few_runs_interval`), so the verdict and p carry the towers'
    variance. `per_tower_run`: each run's difference."""
    a = [np.asarray(x, dtype=np.float64) for x in a]
    b = [np.asarray(x, dtype=np.float64) for x in b]
    if len(a) != len(b) or not a:
        raise ValueError(f"tower comparison needs the same tower runs a side, got {len(a)} and {len(b)}")
    per_run = [float(x.mean() - y.mean()) for x, y in zip(a, b)]
    if len(a) == 1:
        return {**paired_difference(a[0], b[0], confidence, resamples, seed), "verdict": ONE_TOWER_RUN,
                "tower_runs": 1, "per_tower_run": per_run}
    sa, sb = np.stack(a), np.stack(b)  # [T,Sa,N], [T,Sb,N]
    if sa.shape[2] != sb.shape[2]:
        raise ValueError(f"paired comparison needs the same test videos, got {sa.shape[2]} and {sb.shape[2]}")
    rng = np.random.default_rng(seed)
    runs = rng.integers(0, sa.shape[0], (resamples, sa.shape[0]))  # [B,T]
    videos = rng.integers(0, sa.shape[2], (resamples, sa.shape[2]))  # [B,N]
    diffs = _nested_means(sa, runs, videos, rng) - _nested_means(sb, runs, videos, rng)  # [B]
    difference = float(sa.mean() - sb.mean())
    ci, p = _few_runs_interval(difference, diffs, len(a), confidence)
    return {"difference": difference, "ci": ci, "p_value": p, "confidence": confidence,
            "verdict": verdict(ci), "tower_runs": len(a),
            "per_tower_run": per_run}


def _few_runs_interval(difference: float, diffs: np.ndarray, runs: int, confidence: float) -> tuple[list[float], float]:
    """CI and two-sided p of a difference from its nested-bootstrap draws [B] over `runs` tower runs.

    Resampling T runs shrinks their variance by (T-1)/T, and the mean of T runs is t-, not normally,
    distributed: the bootstrap's standard error is scaled by sqrt(T/(T-1)) and used with Student-t quantiles
    on T-1 degrees of freedom, as cluster-robust inference does with few clusters. A percentile interval
    over 3 runs was too narrow to give the same verdicts on two code paths (issue 26)."""
    se = float(diffs.std(ddof=1)) * np.sqrt(runs / (runs - 1))
    if se == 0:
        return [difference, difference], float(difference == 0)
    half = float(stdtrit(runs - 1, 0.5 + confidence / 2)) * se
    return [difference - half, difference + half], float(2 * stdtr(runs - 1, -abs(difference) / se))


def _nested_means(scores: np.ndarray, runs: np.ndarray, videos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean of scores [T,S,N] over the drawn runs [B,T], seeds drawn within each, and videos [B,N] -> [B]."""
    seeds = rng.integers(0, scores.shape[1], (*runs.shape, scores.shape[1]))  # [B,T,S]
    per_seed = np.stack([scores[:, :, v].mean(axis=2) for v in videos])  # [B,T,S]
    picked = per_seed[np.arange(len(runs))[:, None, None], runs[:, :, None], seeds]  # [B,T,S]
    return picked.mean(axis=(1, 2))


def run_scores(run: Mapping[str, Any]) -> np.ndarray:
    """The [S,N] test scores of a metrics dict of `train_seeds` (its `test_correct_seconds`)."""
    if "test_correct_seconds" not in run:
        raise KeyError("metrics without 'test_correct_seconds' (made before per-video scores were stored); rerun the stage")
    return per_video_accuracy(run["test_correct_seconds"])


def compare_runs(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """paired_difference of two metrics dicts."""
    return paired_difference(run_scores(a), run_scores(b))


def compare_tower_runs(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """tower_difference of two lists of metrics dicts, one per tower run."""
    return tower_difference([run_scores(r) for r in a], [run_scores(r) for r in b])
