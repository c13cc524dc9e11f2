"""Dataset plots for the data notebook: class distribution, event lengths, frames, spectrograms, timelines.

Every function returns a matplotlib Figure (built without pyplot, so nothing is shown or kept
in a global figure registry).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.colors import ListedColormap, hsv_to_rgb
from matplotlib.figure import Figure

from avelib.data.ave import BACKGROUND, CATEGORIES, NUM_CLASSES, NUM_SEGMENTS, AVEDataset, Record, label_name

SPLIT_ORDER = ("train", "val", "test")


def class_distribution(dataset: AVEDataset) -> Figure:
    """Number of samples per class in each split (grouped horizontal bars)."""
    fig = Figure(figsize=(8, 9), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(CATEGORIES))
    names = [n for n in SPLIT_ORDER if n in dataset.splits]
    h = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        counts = np.bincount([dataset.records[i].label for i in dataset.splits[name]], minlength=len(CATEGORIES))
        ax.barh(y + j * h, counts, height=h, label=f"{name} ({len(dataset.splits[name])})")
    ax.set_yticks(y + h * (len(names) - 1) / 2, [label_name(c, 30) for c in range(len(CATEGORIES))], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("samples")
    ax.set_title("Class distribution per split")
    ax.legend()
    return fig


def event_length_histogram(records: Sequence[Record], reference: dict[int, int] | None = None) -> Figure:
    """Fraction of samples per event length (s); `reference` counts (e.g. real AVE) drawn beside."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(NUM_SEGMENTS + 1)
    counts = np.bincount([r.end - r.start for r in records], minlength=NUM_SEGMENTS + 1)
    w = 0.4 if reference else 0.8
    ax.bar(x - (w / 2 if reference else 0), counts / max(1, counts.sum()), width=w, label=f"this dataset ({len(records)})")
    if reference:
        ref = np.array([reference.get(int(i), 0) for i in x], dtype=np.float64)
        ax.bar(x + w / 2, ref / max(1.0, ref.sum()), width=w, label=f"reference ({int(ref.sum())})")
    ax.set_xticks(x)
    ax.set_xlabel("event length (s)")
    ax.set_ylabel("fraction of samples")
    ax.set_title("Event-length distribution")
    ax.legend()
    return fig


def frame_strip(frames: np.ndarray, labels: Sequence[int], title: str = "") -> Figure:
    """One frame per second (the middle sampled frame) titled with its segment label.

    frames: uint8 [T,K,S,S,3] (decode cache) or [T,S,S,3]; labels: [T] class indices.
    """
    frames = np.asarray(frames)
    if frames.ndim == 5:
        frames = frames[:, frames.shape[1] // 2]  # [T,S,S,3]
    t = frames.shape[0]
    fig = Figure(figsize=(1.6 * t, 2.2), layout="constrained")
    axes = fig.subplots(1, t, squeeze=False)[0]
    for i, ax in enumerate(axes):
        ax.imshow(frames[i])
        ax.set_title(f"{i} s\n{label_name(int(labels[i]), 14)}", fontsize=7,
                     color="black" if int(labels[i]) == BACKGROUND else "tab:red")
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def stft_db(wave: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Log-magnitude spectrogram (dB) of a mono wave [n]: float [n_fft//2+1, frames]."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.shape[0] < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.shape[0]))
    win = np.hanning(n_fft).astype(np.float32)
    n = 1 + (wave.shape[0] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]  # [frames,n_fft]
    spec = np.abs(np.fft.rfft(wave[idx] * win, axis=1)).T  # [n_fft//2+1, frames]
    return 20 * np.log10(spec + 1e-6)


def spectrogram(audio: np.ndarray, sample_rate: int, labels: Sequence[int], title: str = "") -> Figure:
    """Spectrogram of one video's audio [T,R] (or [n]) with event seconds shaded."""
    wave = np.asarray(audio).reshape(-1)
    db = stft_db(wave, n_fft=512 if sample_rate <= 22050 else 1024)
    fig = Figure(figsize=(9, 3), layout="constrained")
    ax = fig.add_subplot()
    dur = wave.shape[0] / sample_rate
    im = ax.imshow(db, origin="lower", aspect="auto", extent=(0, dur, 0, sample_rate / 2000), cmap="magma",
                   vmin=db.max() - 80, vmax=db.max())
    for t, lab in enumerate(labels):
        if int(lab) != BACKGROUND:
            ax.axvspan(t, t + 1, color="cyan", alpha=0.18, lw=0)
    ax.set_xlabel("time (s)  [shaded: event seconds]")
    ax.set_ylabel("kHz")
    ax.set_title(title or "Audio spectrogram")
    fig.colorbar(im, ax=ax, label="dB")
    return fig


def class_colormap() -> ListedColormap:
    """29 colours: 28 saturated class colours (golden-ratio hues), light grey for background."""
    hsv = [((i * 0.618034) % 1.0, 0.55 + 0.35 * (i % 2), 0.9 - 0.25 * ((i // 2) % 2)) for i in range(len(CATEGORIES))]
    return ListedColormap([*(tuple(hsv_to_rgb(c)) for c in hsv), (0.9, 0.9, 0.9)], name="ave_classes")


def label_timelines(labels: np.ndarray, names: Sequence[str] | None = None, title: str = "") -> Figure:
    """Segment labels [M,10] as coloured rows (grey = background), class named on each row."""
    labels = np.asarray(labels)
    m = labels.shape[0]
    fig = Figure(figsize=(8, 0.35 * m + 1.2), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(labels, cmap=class_colormap(), vmin=0, vmax=NUM_CLASSES - 1, aspect="auto", interpolation="nearest")
    for r in range(m):
        ev = labels[r][labels[r] != BACKGROUND]
        if ev.size:
            ax.text(labels.shape[1] - 0.4, r, label_name(int(ev[0]), 30), va="center", ha="right", fontsize=7)
    ax.set_yticks(np.arange(m), list(names) if names is not None else [str(i) for i in range(m)], fontsize=7)
    ax.set_xticks(np.arange(labels.shape[1]))
    ax.set_xlabel("second")
    ax.set_title(title or "Segment labels (grey = background)")
    return fig
