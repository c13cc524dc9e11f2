"""Metrics on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avelib.eval.metrics import (
    confusion_matrix,
    event_background_pr,
    per_class_accuracy,
    segment_accuracy,
    summarize,
)

B = 28
LABELS = np.array([[0, 0, B, B], [5, 5, 5, B]])
PRED = np.array([[0, B, B, 0], [5, 5, 2, B]])


def test_segment_accuracy():
    assert segment_accuracy(PRED, LABELS) == pytest.approx(5 / 8)
    assert segment_accuracy(LABELS, LABELS) == 1.0


def test_confusion_matrix_rows_true_cols_pred():
    cm = confusion_matrix(PRED, LABELS)
    assert cm.shape == (29, 29) and cm.sum() == 8
    assert cm[0, 0] == 1 and cm[0, B] == 1 and cm[B, 0] == 1 and cm[B, B] == 2
    assert cm[5, 5] == 2 and cm[5, 2] == 1


def test_per_class_accuracy_nan_for_absent():
    acc = per_class_accuracy(PRED, LABELS)
    assert acc.shape == (29,)
    assert acc[0] == 0.5 and acc[5] == pytest.approx(2 / 3) and acc[B] == pytest.approx(2 / 3)
    assert math.isnan(acc[1]) and math.isnan(acc[2])


def test_event_background_pr():
    pr = event_background_pr(PRED, LABELS)
    # event: predicted events = 0,0(wrong seg),5,5,2 -> 4 predicted event segs; true events 5 segs
    # pred event & true event: (0,0),(5,5),(5,5),(5,2) = 4 -> precision 4/5? count precisely:
    pe = PRED != B
    ye = LABELS != B
    tp = (pe & ye).sum()
    assert pr["event"]["precision"] == pytest.approx(tp / pe.sum())
    assert pr["event"]["recall"] == pytest.approx(tp / ye.sum())
    assert pr["background"]["precision"] == pytest.approx(2 / 3)  # predicted bg: 3, correct 2
    assert pr["background"]["recall"] == pytest.approx(2 / 3)  # true bg: 3


def test_shape_and_range_errors():
    with pytest.raises(ValueError, match="shape"):
        segment_accuracy(PRED[:1], LABELS)
    with pytest.raises(ValueError, match="0..28"):
        segment_accuracy(PRED + 100, LABELS)


def test_summarize():
    s = summarize([0.5, 0.7])
    assert s == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "per_seed": [0.5, 0.7]}
    with pytest.raises(ValueError):
        summarize([])


# --- result tables (avelib.eval.tables) and metric plots (avelib.viz.localizer) ---

def _fake_metrics(acc):
    return {"dataset": "SynthAVE", "test_accuracy": summarize([acc, acc + 0.02]),
            "test_accuracy_no_postprocess": summarize([acc - 0.01, acc])}


def test_results_table_labels_every_row_with_its_dataset():
    from avelib.eval.tables import PUBLISHED, results_table, to_markdown

    df = results_table({"AVE-CLIP (ours)": _fake_metrics(0.8), "MLP": _fake_metrics(0.6)}, {"MLP": "AudioCLIP"})
    assert len(df) == 2 + len(PUBLISHED)
    assert df["dataset"].tolist()[:2] == ["SynthAVE", "SynthAVE"]
    assert all("AVE test" in d for d in df["dataset"].tolist()[2:])
    assert df.loc[0, "accuracy"] == 81.0 and df.loc[0, "std"] == 1.0
    paper = df[df["method"] == "AVE-CLIP"].iloc[0]
    assert paper["accuracy"] == 83.7 and paper["std"] == "not available"
    md = to_markdown(df)
    assert md.count("\n") == len(df) + 2 and "| ours | MLP | SynthAVE | AudioCLIP |" in md


def test_metric_plots_return_figures():
    from matplotlib.figure import Figure

    from avelib.viz.localizer import confusion_heatmap, per_class_bars, training_curves

    hist = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_accuracy": 0.5 + 0.1 * e} for e in range(3)]
    assert isinstance(training_curves([hist, hist], ["seed 0", "seed 1"]), Figure)
    assert isinstance(confusion_heatmap(confusion_matrix(PRED, LABELS)), Figure)
    assert isinstance(per_class_bars(per_class_accuracy(PRED, LABELS)), Figure)
    assert isinstance(per_class_bars({"Bark": 0.5, "background": 0.9}), Figure)
    with pytest.raises(ValueError):
        confusion_heatmap(np.zeros((3, 3)))
