"""Localizer plots: training curves, confusion matrix, per-class accuracy, timelines, attention maps.

All functions return matplotlib Figures (never shown; the Agg backend is set by avelib.viz).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import avelib.viz  # noqa: F401  (selects the Agg backend)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from avelib.data.ave import BACKGROUND, CATEGORIES, NUM_CLASSES

CLASS_NAMES = list(CATEGORIES) + ["background"]


def training_curves(histories: Sequence[Sequence[Mapping[str, Any]]], labels: Sequence[str] | None = None) -> Figure:
    """Train loss and validation accuracy per epoch, one line per run (e.g. per seed)."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, hist in enumerate(histories):
        ep = [h["epoch"] for h in hist]
        name = labels[i] if labels else f"run {i}"
        ax_l.plot(ep, [h["train_loss"] for h in hist], label=name)
        ax_a.plot(ep, [h["val_accuracy"] for h in hist], label=name)
        best = int(np.argmax([h["val_accuracy"] for h in hist])) if hist else None
        if best is not None:
            ax_a.scatter([ep[best]], [hist[best]["val_accuracy"]], marker="*", s=80)
    ax_l.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_a.set(xlabel="epoch", ylabel="segment accuracy", title="validation accuracy (* = selected epoch)")
    ax_a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusion_heatmap(cm: np.ndarray, normalize: bool = True, title: str = "confusion matrix") -> Figure:
    """29x29 heatmap, rows = true, columns = predicted; row-normalised by default."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"confusion matrix must be {NUM_CLASSES}x{NUM_CLASSES}, got {cm.shape}")
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(9, 8))
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    ax.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=90, fontsize=6)
    ax.set_yticks(range(NUM_CLASSES), CLASS_NAMES, fontsize=6)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def per_class_bars(acc: Mapping[str, float | None] | Sequence[float], title: str = "per-class accuracy") -> Figure:
    """Horizontal bars of per-class accuracy (absent classes shown as gaps)."""
    values = [acc.get(n) for n in CLASS_NAMES] if isinstance(acc, Mapping) else list(acc)
    vals = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 8))
    colors = ["tab:gray" if i == BACKGROUND else "tab:blue" for i in range(len(vals))]
    ax.barh(range(len(vals)), np.nan_to_num(vals), color=colors)
    ax.set_yticks(range(len(vals)), CLASS_NAMES[: len(vals)], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="segment accuracy", title=title)
    fig.tight_layout()
    return fig


def timelines(
    labels: np.ndarray,
    preds: np.ndarray,
    alpha: np.ndarray | None = None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """For each video (row of labels/preds [V,10]): ground truth vs prediction strips and alpha_t."""
    labels, preds = np.atleast_2d(labels), np.atleast_2d(preds)
    n = labels.shape[0]
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.6 * n), squeeze=False)
    cmap = plt.get_cmap("tab20", NUM_CLASSES)
    for i, ax in enumerate(axes[:, 0]):
        strips = np.stack([labels[i], preds[i]]).astype(float)  # [2,10]
        shown = np.ma.masked_where(strips == BACKGROUND, strips)
        ax.imshow(shown, aspect="auto", cmap=cmap, vmin=0, vmax=NUM_CLASSES - 1, extent=(0, 10, 2, 0))
        for r in range(2):
            for t in range(labels.shape[1]):
                v = int(strips[r, t])
                ax.text(t + 0.5, r + 0.5, "bg" if v == BACKGROUND else str(v), ha="center", va="center", fontsize=7)
        ax.set_yticks([0.5, 1.5], ["truth", "pred"])
        ax.set_xticks(range(11))
        if alpha is not None:
            ax2 = ax.twinx()
            ax2.plot(np.arange(labels.shape[1]) + 0.5, np.atleast_2d(alpha)[i], "k.-", lw=1)
            ax2.axhline(0.5, color="r", lw=0.6, ls="--")
            ax2.set_ylim(0, 2.05)
            ax2.set_yticks([0, 0.5, 1], ["0", ".5", "1"], fontsize=6)
            ax2.set_ylabel("alpha", fontsize=7)
        cls = labels[i][labels[i] != BACKGROUND]
        name = CLASS_NAMES[int(cls[0])] if cls.size else "background only"
        ax.set_title(titles[i] if titles else name, fontsize=8)
    axes[-1, 0].set_xlabel("second")
    fig.tight_layout()
    return fig


def attention_maps(attention: Mapping[str, Any], video: int = 0, head: int | None = None) -> Figure:
    """Temporal attention (block-diagonal T x T) per window size, from forward(return_attention=True).

    `head=None` averages the heads; feature-domain maps (c x c) of the first window are drawn in a
    second row when present.
    """
    keys = [k for k in attention if "temporal" in attention[k]]
    has_feat = any("feature" in attention[k] for k in keys)
    rows = 2 if has_feat else 1
    fig, axes = plt.subplots(rows, max(len(keys), 1), figsize=(3 * max(len(keys), 1), 3 * rows), squeeze=False)
    for j, k in enumerate(keys):
        t = attention[k]["temporal"][video].detach().cpu().numpy()  # [h,T,T]
        m = t.mean(0) if head is None else t[head]  # [T,T]
        axes[0, j].imshow(m, cmap="viridis", vmin=0)
        axes[0, j].set_title(f"{'final' if k == 'final' else 'w=' + k}: time x time", fontsize=8)
        axes[0, j].set(xlabel="key second", ylabel="query second")
        if has_feat:
            if "feature" in attention[k]:
                f = attention[k]["feature"][video, 0].detach().cpu().numpy()  # [h,c,c]
                axes[1, j].imshow(f.mean(0) if head is None else f[head], cmap="magma", vmin=0)
                axes[1, j].set_title(f"{'final' if k == 'final' else 'w=' + k}: channels (window 1)", fontsize=8)
            else:
                axes[1, j].axis("off")
    fig.tight_layout()
    return fig
