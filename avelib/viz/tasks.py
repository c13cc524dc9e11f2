"""Plots of the weak and cross-modal tasks: per-second weak scores vs the truth, an A2V similarity map,
and the accuracy bars of both tasks with their CIs. Figures are built without pyplot (avelib.viz)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import avelib.viz  # noqa: F401  (selects the Agg backend outside notebooks)
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from avelib.data.ave import BACKGROUND, NUM_SEGMENTS, label_name


def weak_score_curves(probability: np.ndarray, labels: np.ndarray, threshold: float, title: str = "") -> Figure:
    """One panel per video: the per-second probability of the predicted video class (line), the
    threshold (dashed) and the true event seconds (shaded). probability [V,10], labels int [V,10]."""
    probability, labels = np.atleast_2d(probability), np.atleast_2d(labels)
    fig = Figure(figsize=(10, 1.6 * len(labels) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(labels), 1, sharex=True))
    t = np.arange(NUM_SEGMENTS)
    for ax, p, y in zip(axes, probability, labels):
        for s in np.flatnonzero(y != BACKGROUND):
            ax.axvspan(s - 0.5, s + 0.5, color="tab:green", alpha=0.25, lw=0)
        ax.plot(t, p, marker="o", color="tab:blue")
        ax.axhline(threshold, ls="--", color="grey")
        event = y[y != BACKGROUND]
        ax.set(ylim=(0, 1.02), ylabel="p(class)", title=f"true event: {label_name(int(event[0])) if len(event) else 'none'}")
    axes[-1].set(xlabel="second", xticks=t)
    fig.suptitle(title or "Weak AVE-CLIP: per-second score of the predicted class (shaded: true event seconds)")
    return fig


def similarity_map(similarity: np.ndarray, start: int, length: int, predicted: int, title: str = "") -> Figure:
    """An A2V map (audio seconds x visual seconds) with the true (green) and predicted (red) placement
    of the audio event's seconds on the visual track."""
    sim = np.asarray(similarity)
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(sim, cmap="viridis", origin="upper")
    fig.colorbar(im, ax=ax, shrink=0.8, label="similarity")
    for offset, color in ((start, "lime"), (predicted, "red")):
        ax.add_patch(Rectangle((offset - 0.5, start - 0.5), length, length, fill=False, ec=color, lw=2))
    ax.set(xlabel="visual second", ylabel="audio second (query: the event rows)", xticks=range(NUM_SEGMENTS),
           yticks=range(NUM_SEGMENTS), title=title or f"A2V: true start {start} (green), predicted {predicted} (red)")
    return fig


def accuracy_bars(rows: Sequence[Mapping[str, Any]], title: str, chance: float | None = None) -> Figure:
    """Horizontal bars of {label, accuracy (mean fraction), ci [lo, hi]} in %, chance as a dashed line."""
    fig = Figure(figsize=(7, 0.45 * len(rows) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    mean = np.array([100 * r["accuracy"] for r in rows])
    lo = mean - np.array([100 * r["ci"][0] for r in rows])
    hi = np.array([100 * r["ci"][1] for r in rows]) - mean
    ax.barh(y, mean, xerr=[lo, hi], color="tab:blue", alpha=0.8, capsize=3)
    if chance is not None:
        ax.axvline(100 * chance, ls="--", color="grey", label="chance")
        ax.legend(loc="lower right")
    ax.set(yticks=y, yticklabels=[r["label"] for r in rows], xlabel="test accuracy (%) with 95 % CI", title=title,
           xlim=(0, 100))
    ax.invert_yaxis()
    return fig
