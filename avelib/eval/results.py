"""The result files of the stages: stage-A summary and plot tables, main metrics, baselines, example videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from avelib.eval.stats import compare_runs, paired_difference, tower_difference
from avelib.io import write_csv

# what every table row carries of a run: accuracies over seeds, the test CI and the per-video scores
SUMMARY_KEYS = ("test_accuracy", "test_accuracy_ci", "test_accuracy_no_postprocess", "val_accuracy",
                "test_correct_seconds")

FINETUNE_LOSS_CSV = "plots/finetune_loss.csv"
FINETUNE_RECALL_CSV = "plots/finetune_recall.csv"

# How each run of the evaluation stage is named in tables (the same harness, features and protocol).
RUN_LABELS = {
    "aveclip": "AVE-CLIP (ours)",
    "aveclip_audio_only": "AVE-CLIP, audio only",
    "aveclip_visual_only": "AVE-CLIP, visual only",
    "avel": "AVEL A+V-att (our harness)",
    "mlp": "per-second MLP (our harness)",
}


def write_finetune_plots(out_dir: Path, history: list[dict[str, Any]], ks: tuple[int, ...]) -> None:
    """Stage A's DVC plot files: per-epoch train losses and validation recalls (columns start with `epoch`)."""
    loss_cols = ["train_loss", "train_contrastive", "train_fbsp", "lr"]
    if any("train_label" in h for h in history):
        loss_cols.insert(3, "train_label")
    rows = [[h["epoch"]] + [h[c] for c in loss_cols] for h in history if h["epoch"] > 0]
    write_csv(out_dir / FINETUNE_LOSS_CSV, ["epoch"] + loss_cols, rows)
    rec_cols = [f"{d}_r{k}" for d in ("a2i", "i2a") for k in ks] + [f"chance_r{k}" for k in ks]
    rows = [[h["epoch"]] + [h[c] for c in rec_cols] + list(h["a2i_r1_ci"]) for h in history]
    write_csv(out_dir / FINETUNE_RECALL_CSV, ["epoch"] + rec_cols + ["a2i_r1_ci_low", "a2i_r1_ci_high"], rows)


def stage_summary(history: Mapping[str, Any]) -> dict[str, Any]:
    """`reports/finetune.json` from a `history.json`: the kept epoch vs the start (epoch 0) on validation
    audio->image R@1, each with its CI, and their paired difference over validation videos (video-weighted)."""
    epochs = {h["epoch"]: h for h in history["epochs"]}
    kept = epochs[history["best_epoch"]]
    start = epochs.get(0)
    versus = None
    if start is not None and "a2i_r1_per_video" in start:
        versus = paired_difference(np.asarray([kept["a2i_r1_per_video"]]), np.asarray([start["a2i_r1_per_video"]]))
    curve = [{k: v for k, v in h.items() if not k.endswith("_per_video")} for h in history["epochs"]]
    return {"kept_epoch": int(history["best_epoch"]), "kept": _r1(kept), "start": _r1(start) if start else None,
            "kept_minus_start": versus, "val_pairs": kept.get("val_pairs"), "val_videos": kept.get("val_videos"),
            "epochs": curve}


def pretraining_summary(history: Mapping[str, Any]) -> dict[str, Any]:
    """A pretraining run's kept epoch and its validation R@1 on the pool (with CI and chance) from its `history.json`."""
    summary = stage_summary(history)
    return {"kept_epoch": summary["kept_epoch"], "kept": summary["kept"]}


def stage_a_across_runs(histories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`reports/tower_runs.json`: stage A's summary per tower run (`history.json` of each, run 0 first) and its
    kept − start across the runs, the runs resampled with the validation videos (tower_difference)."""
    runs = [stage_summary(h) for h in histories]
    pairs = [({e["epoch"]: e for e in h["epochs"]}, h["best_epoch"]) for h in histories]
    scored = all(0 in epochs and "a2i_r1_per_video" in epochs[0] for epochs, _ in pairs)
    versus = tower_difference([np.asarray([epochs[kept]["a2i_r1_per_video"]]) for epochs, kept in pairs],
                              [np.asarray([epochs[0]["a2i_r1_per_video"]]) for epochs, _ in pairs]) if scored else None
    return {"runs": runs, "kept_epochs": [r["kept_epoch"] for r in runs], "kept_minus_start": versus}


def _r1(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"a2i_r1": entry["a2i_r1"], "a2i_r1_ci": entry.get("a2i_r1_ci"), "chance_r1": entry.get("chance_r1")}


def main_metrics(run: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """`reports/metrics.json`: the AVE-CLIP run without its per-epoch histories (those go to plots) and
    without wall-clock times (they differ on every run; models/localizer/metrics.json keeps them)."""
    return {k: v for k, v in run.items() if k not in ("history", "train_seconds")} | {"dataset": dataset}


def summary(run: Mapping[str, Any], reference: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's SUMMARY_KEYS (and `test_selected` where recorded) plus `vs_reference`: the paired test difference
    run - reference (None without one)."""
    versus = compare_runs(run, reference) if reference is not None else None
    peer = {"test_selected": run["test_selected"]} if "test_selected" in run else {}
    return {k: run[k] for k in SUMMARY_KEYS} | peer | {"vs_reference": versus}


def baselines_summary(runs: Mapping[str, Mapping[str, Any]], main: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """`reports/baselines.json` (every run but the main one): name -> summary against AVE-CLIP, label, dataset."""
    return {
        name: summary(run, main) | {"label": RUN_LABELS.get(name, name), "dataset": dataset}
        for name, run in runs.items()
    }


def write_history_csv(histories: Sequence[Sequence[Mapping[str, Any]]], seeds: Sequence[int], path: str | Path) -> None:
    """One row per (seed, epoch): a DVC plot of the training curves."""
    cols = ["seed", "epoch", "train_loss", "val_accuracy", "lr"]
    rows = [[seed] + [row[c] for c in cols[1:]] for seed, hist in zip(seeds, histories) for row in hist]
    write_csv(path, cols, rows)


def per_video_accuracy(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """pred, labels int [N,10] -> float [N] share of correct seconds per video."""
    return (np.asarray(pred) == np.asarray(labels)).mean(axis=1)


def example_videos(pred: np.ndarray, labels: np.ndarray, k: int = 2) -> tuple[list[int], list[int]]:
    """Rows of the k best and k worst videos (ties: videos with more event seconds first)."""
    acc = per_video_accuracy(pred, labels)  # [N]
    events = (np.asarray(labels) != 28).sum(axis=1)  # [N]
    order = np.lexsort((-events, -acc))  # best first
    return order[:k].tolist(), order[::-1][:k].tolist()
