"""Plot helpers shared by every plot of the suite: one style, figure -> PNG bytes / data: URI.

The report page must render offline, so figures are embedded as base64 `data:` URIs rather
than linked files. Library code never shows figures; it returns or encodes them.
"""

from __future__ import annotations

import base64
import contextlib
import io
from pathlib import Path
from typing import Any, Iterator, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# One look for all plots: white background, light grid, readable sizes on a laptop screen.
STYLE: dict[str, object] = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs on every machine
    "image.cmap": "viridis",
}


def apply_style() -> None:
    """Set the suite's plot style globally (notebooks call it once at the top)."""
    matplotlib.rcParams.update(STYLE)


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Draw inside the suite's style without changing the caller's global settings."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float = 6.4, height: float = 3.6, nrows: int = 1, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    """A styled figure and its axes as a 2-D array [nrows, ncols] (always an array, for uniform code)."""
    with plot_style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    return fig, axes


def figure_to_png(fig: Figure, dpi: int | None = None, close: bool = True) -> bytes:
    """Render a Figure to PNG bytes (tight bounding box); close it so pyplot does not keep it alive."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    finally:
        if close:
            plt.close(fig)
    return buf.getvalue()


def png_to_data_uri(png: bytes) -> str:
    """PNG bytes as a `data:image/png;base64,...` URI (checks the PNG signature)."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png_to_data_uri: the bytes are not a PNG image (bad signature)")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_to_data_uri(fig: Figure, dpi: int | None = None) -> str:
    """A Figure as an inline PNG `data:` URI; the figure is closed afterwards."""
    return png_to_data_uri(figure_to_png(fig, dpi=dpi, close=True))


def file_to_data_uri(path: str | Path) -> str:
    """A PNG file on disk as an inline `data:` URI; raises naming the file when it is not a PNG."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return png_to_data_uri(data)
    except ValueError as e:
        raise ValueError(f"{path}: not a PNG image (bad signature)") from e


def save_figure(fig: Figure, path: str | Path, dpi: int | None = None) -> Path:
    """Write a Figure to a PNG file atomically and close it."""
    from avelib.io import atomic_path

    path = Path(path)
    png = figure_to_png(fig, dpi=dpi, close=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return path


def mean_std_plot(
    names: Sequence[str], means: Sequence[float], stds: Sequence[float], title: str = "", xlabel: str = "accuracy (%)"
) -> Figure:
    """Mean +- std per variant as dots with error bars (dots, not bars: the axis need not start at 0)."""
    n = len(names)
    fig, axes = new_figure(width=6.4, height=max(1.6, 0.38 * n + 0.9))
    ax = axes[0, 0]
    y = np.arange(n)
    with plot_style():
        ax.errorbar(means, y, xerr=stds, fmt="o", color="#4C72B0", ecolor="#4C72B0", capsize=4, markersize=6)
        ax.set_yticks(y, labels=list(names))
        ax.set_xlabel(xlabel)
        if title:
            ax.set_title(title)
        lo = min((m - s for m, s in zip(means, stds)), default=0.0)
        hi = max((m + s for m, s in zip(means, stds)), default=1.0)
        pad = max(1.0, 0.1 * (hi - lo))
        ax.set_xlim(max(0.0, lo - pad), min(100.0, hi + pad) if hi <= 100 else hi + pad)
        ax.set_ylim(n - 0.5, -0.5)
    return fig


def label_rows(rows: dict[str, np.ndarray], alpha: np.ndarray | None = None, title: str = "") -> Figure:
    """Per-second label rows (e.g. ground truth, prediction), each [T], as coloured strips with each event
    run named, above the event score alpha [T] when given. Any length T; grey = background."""
    from matplotlib import colormaps

    from avelib.data.ave import BACKGROUND, CATEGORIES

    names = list(rows)
    arrs = [np.asarray(rows[n]).reshape(-1) for n in names]
    t = arrs[0].shape[0]
    n_axes = len(arrs) + (alpha is not None)
    fig, axes = new_figure(width=min(16.0, max(6.0, 0.18 * t + 3.0)), height=0.9 + 0.55 * len(arrs) + 1.3 * (alpha is not None),
                           nrows=n_axes)  # fmt: skip
    tab = colormaps["tab20"]
    with plot_style():
        for r, (name, labels) in enumerate(zip(names, arrs)):
            ax = axes[r, 0]
            colors = [(0.88, 0.88, 0.88) if int(c) == BACKGROUND else tab(int(c) % 20)[:3] for c in labels]
            ax.bar(np.arange(t), np.ones(t), width=1.0, align="edge", color=colors, edgecolor="white", linewidth=0.5)
            start = 0
            for i in range(1, t + 1):  # name each run of one event class
                if i == t or labels[i] != labels[start]:
                    c = int(labels[start])
                    if c != BACKGROUND:
                        ax.text((start + i) / 2, 0.5, CATEGORIES[c], ha="center", va="center", fontsize=8, clip_on=True)
                    start = i
            ax.set_xlim(0, t)
            ax.set_ylim(0, 1)
            ax.set_yticks([0.5], labels=[name])
            ax.grid(False)
            if r < n_axes - 1:
                ax.set_xticklabels([])
        axes[0, 0].set_title(title or "Events per second (grey = background)")
        if alpha is not None:
            ax = axes[-1, 0]
            ax.plot(np.arange(t) + 0.5, np.asarray(alpha).reshape(-1), marker="." if t <= 60 else None)
            ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
            ax.set_xlim(0, t)
            ax.set_ylim(0, 1)
            ax.set_ylabel("event score α")
        axes[-1, 0].set_xlabel("second")
    fig.tight_layout()
    return fig


def prediction_timeline(labels: np.ndarray, alpha: np.ndarray | None = None, title: str = "") -> Figure:
    """Predicted labels [T] (any length) over the event score alpha [T]."""
    return label_rows({"prediction": labels}, alpha, title or "Predicted events per second (grey = background)")


def attention_maps(attention: dict[str, Any], index: int = 0, title: str = "") -> Figure:
    """Temporal (T x T) and feature (c x c) attention of one video, averaged over heads (and windows for
    the feature maps), one column per window-size branch (+ 'final' refining block).

    attention: `LocalizerOutput.attention` = {branch: {"temporal": [B,h,T,T], "feature": [B,n,h,c,c]}}.
    """
    branches = [k for k, v in attention.items() if v]
    if not branches:
        raise ValueError("attention_maps: no attention maps (call the model with return_attention=True)")
    fig, axes = new_figure(width=2.3 * len(branches) + 0.6, height=4.6, nrows=2, ncols=len(branches))
    with plot_style():
        for j, name in enumerate(branches):
            maps = attention[name]
            label = f"w={name}" if name.isdigit() else name
            for r, (kind, reduce) in enumerate((("temporal", (0,)), ("feature", (0, 1)))):
                ax = axes[r, j]
                ax.grid(False)
                if kind not in maps:
                    ax.set_axis_off()
                    ax.set_title(f"{label}: no {kind} attention", fontsize=8)
                    continue
                m = _to_numpy(maps[kind])[index].mean(axis=reduce)  # [T,T] or [c,c]
                ax.imshow(m, cmap="viridis", interpolation="nearest")
                ax.set_title(f"{label} {kind}", fontsize=9)
                ax.set_xlabel("key second" if kind == "temporal" else "key channel", fontsize=8)
                if j == 0:
                    ax.set_ylabel("query second" if kind == "temporal" else "query channel", fontsize=8)
        fig.suptitle(title or "Attention maps (mean over heads)", fontsize=10)
    fig.tight_layout()
    return fig


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x)


def to_image(fig: Figure, dpi: int | None = None):  # -> IPython.display.Image
    """A Figure as an IPython Image for notebooks (closed, so the inline backend does not show it twice)."""
    from IPython.display import Image

    return Image(data=figure_to_png(fig, dpi=dpi, close=True), format="png")


def confusion_figure(conf: np.ndarray, names: Sequence[str], title: str = "") -> Figure:
    """Row-normalised confusion matrix (rows = true class, columns = predicted), counts [C,C]."""
    conf = np.asarray(conf, dtype=np.float64)
    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)  # [C,C], rows sum to 1
    c = conf.shape[0]
    fig, axes = new_figure(width=0.26 * c + 3.2, height=0.26 * c + 2.2)
    ax = axes[0, 0]
    with plot_style():
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(np.arange(c), labels=[n[:16] for n in names], rotation=90, fontsize=6)
        ax.set_yticks(np.arange(c), labels=[n[:16] for n in names], fontsize=6)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.grid(False)
        ax.set_title(title or "Confusion matrix (row-normalised)")
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def history_figure(histories: Sequence[Sequence[dict]], title: str = "") -> Figure:
    """Per-seed training curves: train loss (left) and validation accuracy (right) against the epoch."""
    fig, axes = new_figure(width=9.0, height=3.2, ncols=2)
    with plot_style():
        for s, hist in enumerate(histories):
            ep = [h["epoch"] for h in hist]
            axes[0, 0].plot(ep, [h["train_loss"] for h in hist], label=f"seed run {s}")
            axes[0, 1].plot(ep, [100 * h["val_accuracy"] for h in hist], label=f"seed run {s}")
        axes[0, 0].set(xlabel="epoch", ylabel="train loss", title="training loss")
        axes[0, 1].set(xlabel="epoch", ylabel="val accuracy (%)", title="validation accuracy")
        axes[0, 1].legend()
        if title:
            fig.suptitle(title)
    fig.tight_layout()
    return fig
