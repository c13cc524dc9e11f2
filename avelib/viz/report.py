"""Plot helpers shared by every plot of the suite: one style, figure -> PNG bytes / data: URI.

The report page must render offline, so figures are embedded as base64 `data:` URIs rather
than linked files. Library code never shows figures; it returns or encodes them. Figures are
built without pyplot, so nothing is kept in a global figure registry and nothing needs closing.
The pictures themselves live with their topic: viz.data, viz.training, viz.localizer.
"""

from __future__ import annotations

import base64
import csv
import contextlib
import io
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from avelib.eval.loaders import ReportInputError
from avelib.io import atomic_path, read_json

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
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def figure_to_png(fig: Figure, dpi: int | None = None) -> bytes:
    """Render a Figure to PNG bytes (tight bounding box, white background)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def png_to_data_uri(png: bytes) -> str:
    """PNG bytes as a `data:image/png;base64,...` URI (checks the PNG signature)."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png_to_data_uri: the bytes are not a PNG image (bad signature)")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_to_data_uri(fig: Figure, dpi: int | None = None) -> str:
    """A Figure as an inline PNG `data:` URI."""
    return png_to_data_uri(figure_to_png(fig, dpi=dpi))


def file_to_data_uri(path: str | Path) -> str:
    """A PNG file on disk as an inline `data:` URI; raises naming the file when it is not a PNG."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return png_to_data_uri(data)
    except ValueError as e:
        raise ValueError(f"{path}: not a PNG image (bad signature)") from e


def save_figure(fig: Figure, path: str | Path, dpi: int | None = None) -> Path:
    """Write a Figure to a PNG file atomically."""
    path = Path(path)
    png = figure_to_png(fig, dpi=dpi)
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


def read_plot_table(path: Path) -> list[dict[str, Any]]:
    """A DVC plot file (CSV with header, or JSON list of records / {key: [records]}) as records."""
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    data = read_json(path)
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # DVC's {"name": [records]} form
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ReportInputError(f"{path}: a plot file must hold a list of records (objects)")
    return data


def _number(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def plot_records(records: list[dict[str, Any]], title: str) -> Figure | None:
    """Every numeric column against `epoch` (else the first column), one line per seed where a `seed` column
    splits the records into runs; None when nothing numeric is left to draw."""
    if not records:
        return None
    cols = list(records[0].keys())
    x_key = "epoch" if "epoch" in cols else cols[0]
    y_keys = [c for c in cols if c not in (x_key, "seed") and all(_number(r.get(c)) is not None for r in records)]
    if not y_keys or any(_number(r.get(x_key)) is None for r in records):
        return None
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        runs.setdefault(str(r.get("seed", "")), []).append(r)
    fig, axes = new_figure(width=5.6, height=3.2)
    ax = axes[0, 0]
    for seed, rows in runs.items():
        for c in y_keys:
            ax.plot([_number(r[x_key]) for r in rows], [_number(r[c]) for r in rows],
                    marker="." if len(rows) < 40 else None, label=f"{c}, seed {seed}" if seed else c)
    ax.set_xlabel(x_key)
    ax.set_title(title)
    ax.legend()
    return fig


ForestRow = tuple[str, float, float, float, bool]
"""label, difference, CI low, CI high (points), resolved."""


def forest_plot(panels: Sequence[tuple[str, Sequence[ForestRow]]], xlabel: str) -> Figure:
    """A forest plot: one panel (own x scale) per (title, rows); each difference a dot on its CI bar, zero dashed;
    a resolved one filled, the others hollow and grey."""
    heights = [len(rows) + 1.5 for _, rows in panels]
    with plot_style():
        fig = Figure(figsize=(12, 0.24 * sum(heights) + 0.4), layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
        for ax, (title, rows) in zip(axes, panels):
            for y, (_, diff, low, high, resolved) in enumerate(rows):
                color = "#1f4e9c" if resolved else "#8c8c8c"
                ax.plot([low, high], [y, y], color=color, lw=1.8)
                ax.plot([diff], [y], "o", ms=6, color=color, mfc=color if resolved else "white")
            ax.axvline(0, color="k", lw=0.8, ls="--")
            ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
            ax.set_ylim(len(rows) - 0.5, -0.5)
            ax.set_title(title, loc="left")
            ax.set_xlabel(xlabel)
    return fig


def ablation_figure(axis: str, variants: Sequence[Mapping[str, Any]]) -> Figure:
    """Test accuracy mean ± std of the variants of one axis."""
    return mean_std_plot(
        [v["name"] for v in variants],
        [100.0 * v["test_accuracy"]["mean"] for v in variants],
        [100.0 * v["test_accuracy"]["std"] for v in variants],
        title=f"ablation: {axis} (test accuracy, mean ± std)",
    )
