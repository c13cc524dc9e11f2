"""The files the evaluation stage writes: main metrics, baselines, plot tables, example videos."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from avelib.eval.stats import compare_runs
from avelib.io import atomic_path

# what every table row carries of a run: accuracies over seeds, the test CI and the per-video scores
SUMMARY_KEYS = ("test_accuracy", "test_accuracy_ci", "test_accuracy_no_postprocess", "val_accuracy",
                "test_correct_seconds")

# How each run of the evaluation stage is named in tables (the same harness, features and protocol).
RUN_LABELS = {
    "aveclip": "AVE-CLIP (ours)",
    "aveclip_audio_only": "AVE-CLIP, audio only",
    "aveclip_visual_only": "AVE-CLIP, visual only",
    "avel": "AVEL A+V-att (our harness)",
    "mlp": "per-second MLP (our harness)",
}


def main_metrics(run: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """`reports/metrics.json`: the AVE-CLIP run without its per-epoch histories (those go to plots)."""
    return {k: v for k, v in run.items() if k != "history"} | {"dataset": dataset}


def summary(run: Mapping[str, Any], reference: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's SUMMARY_KEYS plus `vs_reference`: the paired test difference run - reference (None without one)."""
    versus = compare_runs(run, reference) if reference is not None else None
    return {k: run[k] for k in SUMMARY_KEYS} | {"vs_reference": versus}


def baselines_summary(runs: Mapping[str, Mapping[str, Any]], main: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """`reports/baselines.json` (every run but the main one): name -> summary against AVE-CLIP, label, dataset."""
    return {
        name: summary(run, main) | {"label": RUN_LABELS.get(name, name), "dataset": dataset}
        for name, run in runs.items()
    }


def write_history_csv(histories: Sequence[Sequence[Mapping[str, Any]]], seeds: Sequence[int], path: str | Path) -> None:
    """One row per (seed, epoch): a DVC plot of the training curves."""
    cols = ["seed", "epoch", "train_loss", "val_accuracy", "lr"]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for seed, hist in zip(seeds, histories):
                for row in hist:
                    w.writerow({"seed": seed, **row})


def per_video_accuracy(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """pred, labels int [N,10] -> float [N] share of correct seconds per video."""
    return (np.asarray(pred) == np.asarray(labels)).mean(axis=1)


def example_videos(pred: np.ndarray, labels: np.ndarray, k: int = 2) -> tuple[list[int], list[int]]:
    """Rows of the k best and k worst videos (ties: videos with more event seconds first)."""
    acc = per_video_accuracy(pred, labels)  # [N]
    events = (np.asarray(labels) != 28).sum(axis=1)  # [N]
    order = np.lexsort((-events, -acc))  # best first
    return order[:k].tolist(), order[::-1][:k].tolist()
