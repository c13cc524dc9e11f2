"""Seed-averaged runs: train one model kind per seed, tune the post-processing L on validation, test.

`train_seeds` returns the metrics dict of `reports/metrics.json` (keys in its docstring); `train_variants`
runs AVE-CLIP, its one-modality variants and the baselines on the same features and seeds.
With an `out_dir`, each seed trains in `seed<k>/` and resumes from its `last.pt`
(avelib.train.localizer.train_model): after an interruption, finished seeds are not trained again.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from avelib.data.ave import CATEGORIES
from avelib.data.features import load_feature_set
from avelib.distributed import Shard
from avelib.eval import metrics as M
from avelib.eval import peer, stats
from avelib.eval.peer import TestSelection
from avelib.eval.postprocess import choose_max_len, smooth_predictions
from avelib.io import atomic_path, write_json
from avelib.models.baselines import AVELAttention, BaselineConfig, SegmentMLP
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig, localizer_checkpoint
from avelib.params import resolved
from avelib.train.checkpointing import LAST, save_torch
from avelib.train.localizer import BaselinesConfig, EvalConfig, TrainConfig, predict_arrays, train_model
from avelib.train.seeding import seed_everything

ModelKind = Literal["aveclip", "avel", "mlp"]


def _nanmean(values: list[float]) -> float:
    """Mean over the finite values; NaN (no warning) when there are none, e.g. no event ever predicted."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def build_model(
    kind: ModelKind, model_cfg: LocalizerConfig | BaselineConfig, audio_dim: int, visual_dim: int
) -> torch.nn.Module:
    """A fresh model of `kind` ('aveclip' needs a LocalizerConfig, 'avel'/'mlp' a BaselineConfig)."""
    if kind == "aveclip":
        if not isinstance(model_cfg, LocalizerConfig):
            raise TypeError(f"model kind 'aveclip' needs a LocalizerConfig, got {type(model_cfg).__name__}")
        return AVECLIPLocalizer(model_cfg, audio_dim, visual_dim)
    if not isinstance(model_cfg, BaselineConfig):
        raise TypeError(f"model kind '{kind}' needs a BaselineConfig, got {type(model_cfg).__name__}")
    if kind == "avel":
        return AVELAttention(model_cfg, audio_dim, visual_dim)
    if kind == "mlp":
        return SegmentMLP(model_cfg, audio_dim, visual_dim)
    raise ValueError(f"unknown model kind {kind!r}; expected aveclip, avel or mlp")


def train_seeds(
    features: str | Path | tuple[Any, Any],
    labels: Any,
    splits: dict[str, Any],
    model_kind: ModelKind,
    model_cfg: LocalizerConfig | BaselineConfig,
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    out_dir: str | Path | None = None,
    dataset: str = "unknown",
    progress: bool = True,
    encoder: str = "unknown",
    shard: Shard | None = None,
    trained: str | Path | None = None,
    peer_protocol: bool = False,
) -> dict[str, Any]:
    """Train `model_kind` once per seed, choose L on validation, test; the metrics dict (and files in out_dir).

    `peer_protocol` also records the test accuracy the peers' protocol would report (epoch and L chosen
    on the test split, avelib.eval.peer) under `test_selected`, with its inflation over ours.

    `trained`: the out_dir of a run with the very same training (only evaluation settings differ); each
    seed continues from its `seed<k>/last.pt` instead of training again (the resume check proves the match).

    With a `shard` (a torchrun rank, avelib.distributed) only that rank's seeds are trained into
    out_dir and {} is returned: the stage's own process evaluates them afterwards, resuming each.

    Keys: dataset, model, test_accuracy / test_accuracy_no_postprocess / val_accuracy {mean,std,per_seed},
    test_accuracy_ci (crossed bootstrap, avelib.eval.stats), test_correct_seconds (per seed, per test video),
    chosen_max_len (per seed), per_class_accuracy (class name -> mean over seeds), confusion_matrix
    (29x29, summed over seeds, post-processed), event_background_pr (mean over seeds), best_epoch,
    train_seconds, history (per seed), params. out_dir gets `metrics.json`, `predictions.npz` and a
    folder per seed with its checkpoints; for AVE-CLIP `seed<k>/best.pt` is the inference checkpoint
    (avelib.models.localizer.localizer_checkpoint, with the chosen L and `encoder` recorded).
    """
    if isinstance(features, (str, Path)):
        audio, visual = load_feature_set(features, visual=eval_cfg.visual)
    else:
        audio, visual = np.asarray(features[0]), np.asarray(features[1])
    labels = np.asarray(labels, dtype=np.int64)  # [N,10]
    va, te = np.asarray(splits["val"]), np.asarray(splits["test"])
    out = Path(out_dir) if out_dir is not None else None
    acc, acc_raw, val_acc, chosen, epochs, seconds, histories, correct = [], [], [], [], [], [], [], []
    per_class, pr_runs, conf = [], [], np.zeros((29, 29), dtype=np.int64)
    selections: list[TestSelection] = []
    preds: dict[str, np.ndarray] = {"test_index": te, "test_labels": labels[te]}
    for seed in eval_cfg.seeds:
        if shard is not None and not shard.take():
            continue
        seed_everything(seed)  # the initial weights depend on the seed
        model = build_model(model_kind, model_cfg, audio.shape[-1], visual.shape[-1])
        seed_dir = out / f"seed{seed}" if out is not None else None
        if trained is not None and seed_dir is not None:
            _continue_from(Path(trained) / f"seed{seed}" / LAST, seed_dir / LAST)
        selection = TestSelection(te, labels[te], tuple(eval_cfg.postprocess_candidates)) if peer_protocol else None
        t0 = time.perf_counter()
        res = train_model(model, (audio, visual), labels, splits, train_cfg, seed=seed, out_dir=seed_dir,
                          progress=progress, test_selection=selection)
        seconds.append(time.perf_counter() - t0)
        if shard is not None:
            continue
        val_pred, _ = predict_arrays(model, audio[va], visual[va])  # [Nva,10]
        max_len, _ = choose_max_len(val_pred, labels[va], eval_cfg.postprocess_candidates)
        raw, alpha = predict_arrays(model, audio[te], visual[te])  # [Nte,10]
        post = smooth_predictions(raw, max_len)  # [Nte,10]
        if out is not None and isinstance(model, AVECLIPLocalizer):
            ck = localizer_checkpoint(model, audio.shape[-1], visual.shape[-1], max_len, encoder, eval_cfg.visual,
                                      res.best_windows, epoch=res.best_epoch, val_accuracy=res.best_val_accuracy,
                                      dataset=dataset)
            save_torch(out / f"seed{seed}" / "best.pt", ck)
        acc.append(M.segment_accuracy(post, labels[te]))
        correct.append((post == labels[te]).sum(axis=1).tolist())  # [Nte] correct seconds per test video
        acc_raw.append(M.segment_accuracy(raw, labels[te]))
        val_acc.append(M.segment_accuracy(val_pred, labels[va]))
        chosen.append(max_len)
        epochs.append(res.best_epoch)
        histories.append(res.history)
        per_class.append(M.per_class_accuracy(post, labels[te]))
        pr_runs.append(M.event_background_pr(post, labels[te]))
        conf += M.confusion_matrix(post, labels[te])
        preds[f"pred_seed{seed}"] = post
        if selection is not None:
            selections.append(selection)
        preds[f"raw_seed{seed}"] = raw
        if alpha is not None:
            preds[f"alpha_seed{seed}"] = alpha
    if shard is not None:
        return {}
    stacked = np.stack(per_class)  # [S,29], NaN where a class has no test segment
    seen = ~np.isnan(stacked)
    pc = np.where(seen.any(0), np.where(seen, stacked, 0.0).sum(0) / np.maximum(seen.sum(0), 1), np.nan)  # [29]
    names = list(CATEGORIES) + ["background"]
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "model": model_kind,
        "test_accuracy": M.summarize(acc),
        "test_accuracy_ci": stats.accuracy_ci(stats.per_video_accuracy(correct)),
        "test_correct_seconds": correct,
        "test_accuracy_no_postprocess": M.summarize(acc_raw),
        "val_accuracy": M.summarize(val_acc),
        "chosen_max_len": chosen,
        "best_epoch": epochs,
        "train_seconds": seconds,
        "per_class_accuracy": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, pc)},
        "confusion_matrix": conf.tolist(),
        "event_background_pr": {
            side: {k: _nanmean([r[side][k] for r in pr_runs]) for k in ("precision", "recall", "f1")}
            for side in ("event", "background")
        },
        "history": histories,
        "params": {"model": resolved(model_cfg), "train": resolved(train_cfg), "evaluate": resolved(eval_cfg)},
    }
    if selections:
        metrics["test_selected"] = peer.summary(selections, metrics)
    if out is not None:
        write_json(metrics, out / "metrics.json")
        with atomic_path(out / "predictions.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **preds)
    return metrics


def _continue_from(source: Path, target: Path) -> None:
    """Start `target` (a seed's resume point) as a copy of `source`, unless it exists (a resumed stage)."""
    if target.exists():
        return
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the trained run to continue from has no resume point")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


VARIANTS: tuple[tuple[str, ModelKind, str | None], ...] = (
    ("aveclip", "aveclip", None),
    ("aveclip_audio_only", "aveclip", "audio"),
    ("aveclip_visual_only", "aveclip", "visual"),
    ("avel", "avel", None),
    ("mlp", "mlp", None),
)


def train_variants(
    features: str | Path | tuple[Any, Any],
    labels: Any,
    splits: dict[str, Any],
    localizer_cfg: LocalizerConfig | None,
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    out_dir: str | Path | None = None,
    dataset: str = "unknown",
    progress: bool = True,
    names: tuple[str, ...] | None = None,
    encoder: str = "unknown",
    shard: Shard | None = None,
    baselines: BaselinesConfig = BaselinesConfig(),
    peer_protocol: bool = False,
) -> dict[str, Any]:
    """The evaluation stage: AVE-CLIP, its audio-only and visual-only variants, and AVEL and the MLP
    with `baselines` (their sizes and learning rate); `names` picks a subset of VARIANTS by name
    (`localizer_cfg` may be None when it holds no AVE-CLIP run).

    Returns the AVE-CLIP metrics at the top level (the `reports/metrics.json` format) with a
    `variants` key holding every run's metrics (AVE-CLIP included) by name; each run also writes
    `<out_dir>/<name>/metrics.json`, and `<out_dir>/metrics.json` gets the combined dict.
    """
    if isinstance(features, (str, Path)):
        features = load_feature_set(features, visual=eval_cfg.visual)
    out = Path(out_dir) if out_dir is not None else None
    runs: dict[str, Any] = {}
    for name, kind, modality in VARIANTS:
        if names is not None and name not in names:
            continue
        if kind == "aveclip":
            if localizer_cfg is None:
                raise ValueError(f"run {name!r} is an AVE-CLIP run: it needs a localizer config")
            cfg: LocalizerConfig | BaselineConfig = (
                localizer_cfg if modality is None else dataclasses.replace(localizer_cfg, modality=modality)
            )
            train = train_cfg
        else:
            cfg, train = baselines.model, baselines.train_config(train_cfg, kind)
        runs[name] = train_seeds(features, labels, splits, kind, cfg, train, eval_cfg,
                                    out / name if out is not None else None, dataset, progress, encoder, shard,
                                    peer_protocol=peer_protocol)
    combined = {**runs.get("aveclip", {}), "variants": runs}
    if out is not None and shard is None:
        write_json(combined, out / "metrics.json")
    return combined
