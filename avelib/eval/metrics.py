"""Segment-level metrics of AVE localization (29 classes, background = 28, counted as a class)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from avelib.data.ave import BACKGROUND, NUM_CLASSES


def _check(pred: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"predictions {pred.shape} and labels {labels.shape} differ in shape")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES or pred.min() < 0 or pred.max() >= NUM_CLASSES):
        raise ValueError(f"class indices must lie in 0..{NUM_CLASSES - 1}")
    return pred.reshape(-1).astype(np.int64), labels.reshape(-1).astype(np.int64)


def segment_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of segments whose 29-way prediction equals the label."""
    p, y = _check(pred, labels)
    return float((p == y).mean())


def confusion_matrix(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """int64 [29,29], rows = true class, columns = predicted class."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix  # 3 s to import: when used

    p, y = _check(pred, labels)
    cm = multiclass_confusion_matrix(torch.from_numpy(p), torch.from_numpy(y), num_classes=NUM_CLASSES)
    return cm.numpy().astype(np.int64)  # [29,29]


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float [29]: recall of each class over its segments; NaN for classes absent from `labels`."""
    cm = confusion_matrix(pred, labels)  # [29,29]
    support = cm.sum(axis=1)  # [29]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)  # [29]


def _pr(tp: int, n_pred: int, n_true: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else float("nan")
    recall = tp / n_true if n_true else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if n_pred and n_true and (precision + recall) else float("nan")
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def event_background_pr(pred: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Binary event-vs-background precision/recall/F1, each side taken as the positive class.

    'event' counts a segment as detected when both are non-background (class identity ignored).
    """
    p, y = _check(pred, labels)
    pe, ye = p != BACKGROUND, y != BACKGROUND
    return {
        "event": _pr(int((pe & ye).sum()), int(pe.sum()), int(ye.sum())),
        "background": _pr(int((~pe & ~ye).sum()), int((~pe).sum()), int((~ye).sum())),
    }


def summarize(values: Sequence[float]) -> dict[str, object]:
    """{mean, std (population, ddof=0), per_seed} of one metric over seeds."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("summarize needs at least one value")
    return {"mean": float(arr.mean()), "std": float(arr.std()), "per_seed": [float(v) for v in arr]}
