"""Post-processing of per-second predictions: events are temporally local, so short isolated runs
between two runs of the same label are corrected (spec/ave-clip.md; L is tuned on validation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _runs(row: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, length, label) of the maximal constant runs of a 1-D int array."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    for t in range(1, len(row) + 1):
        if t == len(row) or row[t] != row[start]:
            runs.append((start, t - start, int(row[start])))
            start = t
    return runs


def smooth_predictions(pred: np.ndarray, max_len: int) -> np.ndarray:
    """A run of length <= max_len flanked on both sides by runs of one same label takes that label.

    Decisions use the runs of the input row (one pass), so the result does not depend on the scan
    order; runs touching the first or last second are never changed; max_len=0 is a no-op.
    """
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"smooth_predictions expects int [N,T] predictions, got shape {pred.shape}")
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    out = pred.copy()  # [N,T]
    if max_len == 0:
        return out
    for i, row in enumerate(pred):
        runs = _runs(row)
        for k in range(1, len(runs) - 1):
            start, length, _ = runs[k]
            left, right = runs[k - 1][2], runs[k + 1][2]
            if length <= max_len and left == right:
                out[i, start : start + length] = left
    return out


def choose_max_len(
    val_pred: np.ndarray, val_labels: np.ndarray, candidates: Sequence[int] = (0, 1, 2, 3)
) -> tuple[int, dict[int, float]]:
    """The L among `candidates` with the best validation segment accuracy (ties -> the smallest L).

    Returns (L, {candidate: accuracy}).
    """
    if not candidates:
        raise ValueError("choose_max_len needs at least one candidate")
    labels = np.asarray(val_labels)
    scores = {int(c): float((smooth_predictions(val_pred, int(c)) == labels).mean()) for c in candidates}
    best = min(scores, key=lambda c: (-scores[c], c))
    return best, scores
