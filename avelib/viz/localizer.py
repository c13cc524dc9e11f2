"""Localizer plots: training curves, confusion matrix, per-class accuracy, timelines, attention maps.

Every function returns a matplotlib Figure built without pyplot (nothing is shown or kept in a
global figure registry; notebooks display the returned Figure, the report encodes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import avelib.viz  # noqa: F401  (selects the Agg backend outside notebooks)
import numpy as np
from matplotlib.figure import Figure

from avelib.data.ave import BACKGROUND, NUM_CLASSES, label_name
from avelib.viz.data import class_colormap


def training_curves(
    histories: Sequence[Sequence[Mapping[str, Any]]], labels: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """Train loss and validation accuracy per epoch, one line per run (e.g. per seed); * = best epoch.

    Each history is a list of epoch records with `epoch`, `train_loss`, `val_accuracy` (a KeyError
    names a missing one).
    """
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax_l, ax_a = fig.subplots(1, 2)
    for i, hist in enumerate(histories):
        ep = [h["epoch"] for h in hist]
        acc = [h["val_accuracy"] for h in hist]
        name = labels[i] if labels else f"run {i}"
        ax_l.plot(ep, [h["train_loss"] for h in hist], label=name)
        line = ax_a.plot(ep, acc, label=name)[0]
        if hist:  # the epoch whose weights are kept
            best = int(np.argmax(acc))
            ax_a.scatter([ep[best]], [acc[best]], marker="*", s=80, color=line.get_color())
    ax_l.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_a.set(xlabel="epoch", ylabel="segment accuracy", title="validation accuracy (* = selected epoch)")
    ax_a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def confusion_heatmap(cm: np.ndarray, normalize: bool = True, title: str = "confusion matrix") -> Figure:
    """29x29 heatmap of counts, rows = true, columns = predicted; row-normalised by default."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"confusion matrix must be {NUM_CLASSES}x{NUM_CLASSES}, got {cm.shape}")
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)  # [29,29], rows sum to 1 (or 0)
    names = [label_name(i, 24) for i in range(NUM_CLASSES)]
    fig = Figure(figsize=(9, 8), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None, interpolation="nearest")
    ax.set_xticks(range(NUM_CLASSES), names, rotation=90, fontsize=6)
    ax.set_yticks(range(NUM_CLASSES), names, fontsize=6)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return fig


def per_class_bars(acc: Mapping[str, float | None] | Sequence[float], title: str = "per-class accuracy") -> Figure:
    """Horizontal bars of per-class accuracy, keyed by class name or in class order (absent classes are gaps)."""
    names = [label_name(i) for i in range(NUM_CLASSES)]
    values = [acc.get(n) for n in names] if isinstance(acc, Mapping) else list(acc)
    vals = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    fig = Figure(figsize=(6, 8), layout="constrained")
    ax = fig.add_subplot()
    colors = ["tab:gray" if i == BACKGROUND else "tab:blue" for i in range(len(vals))]
    ax.barh(range(len(vals)), np.nan_to_num(vals), color=colors)
    ax.set_yticks(range(len(vals)), names[: len(vals)], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="segment accuracy", title=title)
    return fig


def timelines(
    labels: np.ndarray | None,
    preds: np.ndarray,
    alpha: np.ndarray | None = None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Per video, the ground-truth and predicted classes per second as coloured strips (grey = background,
    each event run named), with the event score alpha drawn over the prediction strip.

    labels, preds, alpha: [V,T] or [T] for one video, any length T; `labels=None` draws the prediction only
    (own videos have no ground truth).
    """
    preds = np.atleast_2d(np.asarray(preds))  # [V,T]
    rows: list[tuple[str, np.ndarray]] = [("pred", preds)]
    if labels is not None:
        labels = np.atleast_2d(np.asarray(labels))  # [V,T]
        if labels.shape != preds.shape:
            raise ValueError(f"timelines: labels {labels.shape} and preds {preds.shape} must have the same shape")
        rows.insert(0, ("truth", labels))
    alphas = None if alpha is None else np.atleast_2d(np.asarray(alpha, dtype=np.float64))  # [V,T]
    n, t = preds.shape
    r = len(rows)
    width = min(16.0, max(8.0, 0.18 * t + 3.0))
    fig = Figure(figsize=(width, (0.5 * r + 1.0) * n + 0.3), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    chars_per_second = (width - 1.5) / t / 0.075  # ~0.075 in per character at fontsize 7
    for i, ax in enumerate(axes):
        strips = np.stack([arr[i] for _, arr in rows])  # [R,T]
        ax.imshow(strips, cmap=class_colormap(), vmin=0, vmax=NUM_CLASSES - 1, aspect="auto",
                  interpolation="nearest", extent=(0, t, r, 0))  # fmt: skip
        for row, labs in enumerate(strips):
            _name_runs(ax, labs, row + 0.5, chars_per_second)
        ax.set_yticks([k + 0.5 for k in range(r)], [name for name, _ in rows])
        ax.set_xlim(0, t)
        ax.grid(False)
        if t <= 20:
            ax.set_xticks(range(t + 1))
        if alphas is not None:
            ax2 = ax.twinx()  # alpha in [0,1] spans the bottom (prediction) strip
            ax2.plot(np.arange(t) + 0.5, alphas[i], "k.-" if t <= 60 else "k-", lw=1)
            ax2.axhline(0.5, color="r", lw=0.6, ls="--")
            ax2.set_ylim(0, r + 0.05)
            ax2.set_yticks([0, 0.5, 1], ["0", ".5", "1"], fontsize=6)
            ax2.set_ylabel("alpha", fontsize=7)
        ax.set_title(titles[i] if titles else _default_title(strips[0]), fontsize=8)
    axes[-1].set_xlabel("second")
    return fig


def _name_runs(ax: Any, labels: np.ndarray, y: float, chars_per_second: float) -> None:
    """Write the class name (or its index, where the run is too short) at the middle of each event run."""
    start = 0
    for s in range(1, len(labels) + 1):
        if s == len(labels) or labels[s] != labels[start]:
            c = int(labels[start])
            if c != BACKGROUND:
                room = int((s - start) * chars_per_second)
                text = label_name(c, room) if room >= 4 else str(c)
                ax.text((start + s) / 2, y, text, ha="center", va="center", fontsize=7, clip_on=True)
            start = s


def _default_title(labels: np.ndarray) -> str:
    ev = labels[labels != BACKGROUND]
    return label_name(int(ev[0])) if ev.size else "background only"


def attention_maps(attention: Mapping[str, Any], video: int = 0, head: int | None = None, title: str = "") -> Figure:
    """Temporal (T x T, block-diagonal) and feature (c x c, mean over the windows) attention of one video,
    one column per window-size branch (+ 'final' refining block), from forward(return_attention=True).

    attention: {branch: {"temporal": [B,h,T,T], "feature": [B,n,h,c,c]}}; `head=None` averages the heads.
    """
    branches = [k for k, v in attention.items() if v]
    if not branches:
        raise ValueError("attention_maps: no attention maps (call the model with return_attention=True)")
    kinds = [kind for kind in ("temporal", "feature") if any(kind in attention[k] for k in branches)]
    fig = Figure(figsize=(2.6 * len(branches) + 0.6, 2.6 * len(kinds) + 0.6), layout="constrained")
    axes = fig.subplots(len(kinds), len(branches), squeeze=False)
    for j, key in enumerate(branches):
        name = f"w={key}" if str(key).isdigit() else str(key)
        for r, kind in enumerate(kinds):
            ax = axes[r, j]
            ax.grid(False)
            if kind not in attention[key]:
                ax.set_axis_off()
                ax.set_title(f"{name}: no {kind} attention", fontsize=8)
                continue
            m = _to_numpy(attention[key][kind])[video]  # temporal [h,T,T]; feature [n,h,c,c]
            if kind == "feature":
                m = m.mean(axis=0)  # [h,c,c]
            m = m.mean(axis=0) if head is None else m[head]  # [T,T] or [c,c]
            ax.imshow(m, cmap="viridis" if kind == "temporal" else "magma", vmin=0, interpolation="nearest")
            ax.set_title(f"{name}: {'time x time' if kind == 'temporal' else 'channels'}", fontsize=8)
            ax.set_xlabel("key second" if kind == "temporal" else "key channel", fontsize=8)
            if j == 0:
                ax.set_ylabel("query second" if kind == "temporal" else "query channel", fontsize=8)
    heads = "mean over heads" if head is None else f"head {head}"
    fig.suptitle(title or f"Attention maps ({heads})", fontsize=10)
    return fig


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x)
