"""Stage A figures: fine-tuning loss and validation recall curves, retrieval similarity heatmap."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from avelib import viz as _viz  # noqa: F401  (selects the Agg backend outside notebooks)

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure


def _epochs(history: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Accept `history.json` as loaded (dict with "epochs") or the list of epoch entries."""
    entries = history["epochs"] if isinstance(history, Mapping) else history
    if not entries:
        raise ValueError("history has no epoch entries (has fine-tuning run?)")
    return list(entries)


def plot_finetune_loss(history: Mapping[str, Any] | Sequence[Mapping[str, Any]], title: str = "Stage A: contrastive fine-tuning loss") -> Figure:
    """Training loss per epoch: total, contrastive part, FBSP term (and the class-name term when
    pretraining); lr on a twin axis."""
    rows = [h for h in _epochs(history) if h["epoch"] > 0]
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ep = [h["epoch"] for h in rows]
    ax.plot(ep, [h["train_loss"] for h in rows], "o-", label="total")
    ax.plot(ep, [h["train_contrastive"] for h in rows], "s--", label="contrastive (symmetric CE)")
    ax.plot(ep, [h["train_fbsp"] for h in rows], "^:", label="FBSP regulariser")
    if rows and "train_label" in rows[0]:
        ax.plot(ep, [h["train_label"] for h in rows], "d-.", label="class names (audio + image CE)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over pairs)")
    ax.set_title(title)
    if rows and "lr" in rows[0]:
        ax2 = ax.twinx()
        ax2.plot(ep, [h["lr"] for h in rows], color="0.6", lw=1, label="lr (end of epoch)")
        ax2.set_ylabel("learning rate", color="0.4")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_finetune_recall(
    history: Mapping[str, Any] | Sequence[Mapping[str, Any]], best_epoch: int | None = None
) -> Figure:
    """Validation recall@k (audio->image, image->audio) per epoch, with chance level and the kept epoch."""
    if best_epoch is not None and not isinstance(best_epoch, int):
        raise TypeError(
            f"plot_finetune_recall: best_epoch must be an epoch number (e.g. result.best_epoch), got "
            f"{type(best_epoch).__name__}; chance levels are read from the history itself"
        )
    rows = _epochs(history)
    if best_epoch is None and isinstance(history, Mapping):
        best_epoch = history.get("best_epoch")
    ks = sorted(int(k[5:]) for k in rows[0] if k.startswith("a2i_r") and k[5:].isdigit())
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ep = [h["epoch"] for h in rows]
    for k, color in zip(ks, ("C0", "C1", "C2", "C3")):
        ax.plot(ep, [h[f"a2i_r{k}"] for h in rows], "o-", color=color, label=f"audio->image R@{k}")
        ax.plot(ep, [h[f"i2a_r{k}"] for h in rows], "s--", color=color, alpha=0.7, label=f"image->audio R@{k}")
        ax.axhline(rows[-1][f"chance_r{k}"], color=color, lw=0.8, ls=":", label=f"chance R@{k}")
    if all("a2i_r1_ci" in h for h in rows):  # 95 % bootstrap CI over validation videos
        lo, hi = zip(*(h["a2i_r1_ci"] for h in rows))
        ax.fill_between(ep, lo, hi, color="C0", alpha=0.15, label="audio->image R@1, 95 % CI")
    if rows[0]["epoch"] == 0:
        ax.axhline(rows[0]["a2i_r1"], color="0.3", lw=0.8, ls="--", label="start (epoch 0) a2i R@1")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="k", lw=0.8, ls="-.", label=f"kept epoch {best_epoch}")
    ax.set_xlabel("epoch (0 = before fine-tuning)")
    ax.set_ylabel("recall (validation)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Retrieval among {rows[-1].get('val_pairs', '?')} validation pairs "
                 f"({rows[-1].get('val_videos', '?')} videos)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def similarity_matrix(a_emb: torch.Tensor | np.ndarray, i_emb: torch.Tensor | np.ndarray) -> np.ndarray:
    """Cosine similarities [M,M] of audio rows against image columns (diagonal = true pairs)."""
    a = F.normalize(torch.as_tensor(np.asarray(a_emb), dtype=torch.float32), dim=-1)  # [M,E]
    i = F.normalize(torch.as_tensor(np.asarray(i_emb), dtype=torch.float32), dim=-1)  # [M,E]
    return (a @ i.T).numpy()  # [M,M]


def plot_similarity_heatmap(sim: np.ndarray, names: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Heatmap of an audio x image cosine-similarity matrix; each row's best image is marked."""
    sim = np.asarray(sim)
    m = sim.shape[0]
    fig = Figure(figsize=(1.0 + 0.45 * m, 0.8 + 0.4 * m), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(sim, cmap="viridis")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine similarity")
    best = sim.argmax(axis=1)  # [M]
    for r, c in enumerate(best):
        ax.text(c, r, "x" if c != r else "o", ha="center", va="center", color="w", fontsize=8)
    labels = list(names) if names is not None else [str(j) for j in range(m)]
    ax.set_xticks(range(m), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(m), labels, fontsize=7)
    ax.set_xlabel("image (frame of the second)")
    ax.set_ylabel("audio (1 s)")
    ax.set_title(title or "audio->image retrieval (o = correct top-1, x = wrong)", fontsize=9)
    return fig


def retrieval_heatmap(
    model: torch.nn.Module,
    cache: Any,
    labels: np.ndarray,
    splits: Mapping[str, np.ndarray],
    n: int = 8,
    names: Sequence[str] | None = None,
    device: str = "cpu",
) -> Figure:
    """Similarity heatmap of `n` validation pairs (the first event second of each of `n` validation videos).

    `names` (optional, one per cache row, e.g. category names) label the axes; default: video ids.
    """
    from avelib.models.device import resolve_device
    from avelib.train.pairs import embed_pairs, event_videos, validation_pairs

    videos = event_videos(labels, splits["val"], cache.ok)
    pairs = validation_pairs(videos, np.asarray(labels), int(cache.frames_per_second), 1)  # [M,4]
    pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]][:n]  # [n,4] one per video
    if len(pairs) < 2:
        raise ValueError("retrieval_heatmap needs >= 2 validation videos with an event second")
    a, i = embed_pairs(model, cache, pairs, batch_size=64, device=resolve_device(device))
    ids = list(names) if names is not None else list(cache.video_ids)
    tick = [f"{ids[v]}@{s}s" for v, s, _, _ in pairs]
    return plot_similarity_heatmap(similarity_matrix(a, i), tick)


__all__ = [
    "plot_finetune_loss", "plot_finetune_recall", "similarity_matrix", "plot_similarity_heatmap", "retrieval_heatmap",
]


def plot_stage_a_runs(summary: Mapping[str, Any]) -> Figure:
    """Validation audio->image R@1 per epoch of every tower run (`reports/tower_runs.json`), each with its 95 % CI
    over validation videos and its kept epoch marked; chance dotted."""
    fig = Figure(figsize=(6.5, 3.5 + 0.15 * len(summary["runs"])), layout="constrained")
    ax = fig.add_subplot()
    for k, run in enumerate(summary["runs"]):
        rows, color = run["epochs"], f"C{k}"
        ep = [h["epoch"] for h in rows]
        ax.plot(ep, [h["a2i_r1"] for h in rows], "o-", ms=3, color=color, label=f"run {k} (kept epoch {run['kept_epoch']})")
        if all("a2i_r1_ci" in h for h in rows):
            lo, hi = zip(*(h["a2i_r1_ci"] for h in rows))
            ax.fill_between(ep, lo, hi, color=color, alpha=0.12)
        kept = next(h for h in rows if h["epoch"] == run["kept_epoch"])
        ax.plot([kept["epoch"]], [kept["a2i_r1"]], "*", ms=12, color=color)
    ax.axhline(summary["runs"][0]["epochs"][-1]["chance_r1"], color="0.4", lw=0.8, ls=":", label="chance R@1")
    ax.set_xlabel("epoch (0 = the pretrained start)")
    ax.set_ylabel("audio->image R@1 (validation)")
    ax.set_title("Stage A per tower run: R@1 with 95 % CI, * = kept epoch")
    fig.legend(loc="outside lower center", ncol=3, fontsize=7)  # below the axes: ten runs' curves fill them
    ax.grid(alpha=0.3)
    return fig
