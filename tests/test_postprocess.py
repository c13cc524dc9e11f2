"""Post-processing: short runs flanked by one same label take that label; L chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest

from avelib.eval.postprocess import choose_max_len, smooth_predictions

B = 28


def _s(row, L):
    return smooth_predictions(np.array([row]), L)[0].tolist()


def test_isolated_background_inside_event_is_filled():
    assert _s([3, 3, 3, B, 3, 3, 3, 3, 3, 3], 1) == [3] * 10


def test_isolated_event_inside_background_is_removed():
    assert _s([B, B, 5, B, B, B, B, B, B, B], 1) == [B] * 10


def test_run_longer_than_L_stays():
    row = [3, 3, B, B, 3, 3, 3, 3, 3, 3]
    assert _s(row, 1) == row
    assert _s(row, 2) == [3] * 10


def test_edge_runs_are_never_changed():
    row = [B, 3, 3, 3, 3, 3, 3, 3, 3, B]  # runs at both ends are flanked on one side only
    assert _s(row, 3) == row
    assert _s([5, B, B, B, B, B, B, B, B, B], 5) == [5] + [B] * 9


def test_different_flanks_stay():
    row = [3, 3, 3, B, 4, 4, 4, 4, 4, 4]
    assert _s(row, 2) == row


def test_L0_is_noop_and_input_untouched():
    pred = np.array([[3, B, 3, B, 3, B, 3, B, 3, B]])
    before = pred.copy()
    assert np.array_equal(smooth_predictions(pred, 0), pred)
    smooth_predictions(pred, 2)
    assert np.array_equal(pred, before)


def test_alternating_runs_collapse_shortest_first():
    assert _s([3, B, 3, B, 3, 3, 3, 3, 3, 3], 1) == [3, 3, 3, 3, 3, 3, 3, 3, 3, 3]
    assert _s([B, 3, B, 3, B, B, B, B, B, B], 1) == [B] * 10
    # the shorter run is decided first: B (len 1) inside 3s, not 3 (len 2) inside Bs
    assert _s([B, B, B, 3, 3, B, 3, 3, 3, 3], 2) == [B, B, B, 3, 3, 3, 3, 3, 3, 3]


def test_bad_input():
    with pytest.raises(ValueError):
        smooth_predictions(np.zeros(10, dtype=int), 1)
    with pytest.raises(ValueError):
        smooth_predictions(np.zeros((1, 10), dtype=int), -1)


def test_choose_max_len_on_validation_with_tie_to_smallest():
    labels = np.array([[3] * 10, [B] * 10])
    pred = np.array([[3, 3, B, B, 3, 3, 3, 3, 3, 3], [B] * 10])
    L, scores = choose_max_len(pred, labels, (0, 1, 2, 3))
    assert L == 2 and scores[2] == 1.0 and scores[0] == 0.9
    L, _ = choose_max_len(labels, labels, (2, 0, 1))
    assert L == 0  # all tie -> smallest
