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


def _smooth_row(row: np.ndarray, max_len: int) -> np.ndarray:
    row = row.copy()
    while True:
        runs = _runs(row)
        eligible = [
            (runs[k][1], runs[k][0], runs[k - 1][2])
            for k in range(1, len(runs) - 1)
            if runs[k][1] <= max_len and runs[k - 1][2] == runs[k + 1][2]
        ]
        if not eligible:
            return row
        length, start, label = min(eligible)  # shortest first, then leftmost
        row[start : start + length] = label  # merges three runs into one: the loop terminates


def smooth_predictions(pred: np.ndarray, max_len: int) -> np.ndarray:
    """A run of length <= max_len flanked on both sides by runs of one same label takes that label.

    Applied repeatedly, shortest run first (then leftmost), until no run qualifies, so alternating
    patterns such as A B A B A... collapse instead of flipping; runs touching the first or last second
    are never changed (flanked on one side only); max_len=0 is a no-op.
    """
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"smooth_predictions expects int [N,T] predictions, got shape {pred.shape}")
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    if max_len == 0:
        return pred.copy()
    return np.stack([_smooth_row(row, max_len) for row in pred]) if len(pred) else pred.copy()  # [N,T]


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
