"""Weakly supervised localization: training sees video-level labels only (AVEL's weak setting).

Targets follow `mil_labels.h5` (avelib.data.ave.video_labels: a 29-way one-hot of the video's
category). Column 28 (background) has no positive without the release's background-only videos, so
the models score the 28 event classes. Every model of the suite gives per-second class logits
[B,T,28] (`second_logits`); they are pooled over time (max, or softmax-attention over the seconds)
into video logits [B,28] and trained with the multi-label soft-margin loss.

Selection, in the order the protocol allows:
- the epoch: lowest validation loss against the validation videos' **video-level** labels (no
  segment label of any split);
- the threshold: the per-second score sigmoid(logit of the predicted video class) above which a
  second is that class, else background, is chosen among `WeakConfig.thresholds` by validation
  segment accuracy. AVEL's weak protocol also reads validation segment labels for its model
  choice; `test_accuracy_fixed` is reported beside it with the threshold fixed at 0.5, which uses
  no segment label at all.
- `test_accuracy_argmax`: AVEL's own rule, each second's top class over all its outputs with no
  threshold. AVEL trains its background output on the release's background-only videos; without
  them that output is never a target, so it would never win the argmax, and the rule here is the
  top of the 28 event classes: background is never predicted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from avelib.data.ave import BACKGROUND, NUM_SEGMENTS
from avelib.eval import metrics as M
from avelib.eval import stats
from avelib.io import read_json, write_json
from avelib.models.device import cpu_state
from avelib.models.localizer import NUM_EVENTS, AVECLIPLocalizer
from avelib.train.localizer import (TrainConfig, as_float_tensor, make_scheduler, phase_plan, set_windows, train_epoch,
                                   windows_at)
from avelib.train.optim import adam
from avelib.train.runs import build_model
from avelib.train.seeding import seed_everything

Pool = Literal["max", "attention"]
FIXED_THRESHOLD = 0.5


@dataclass(frozen=True)
class WeakConfig:
    """params.yaml section `weak` (the weak stage; models, sizes and seeds follow the main sections)."""

    pool: Pool = "max"
    """Temporal pooling of per-second logits into video logits: max (AVEL) or attention (softmax over seconds)."""
    thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    """Candidates for the per-second event threshold, chosen on validation."""
    models: tuple[Literal["aveclip", "avel", "mlp"], ...] = ("aveclip", "avel", "mlp")
    """Models trained weakly (avelib.train.runs.build_model kinds)."""
    encoders: tuple[str, ...] = ("finetuned", "frozen")
    """Feature folders under the features root, each run with every model."""


def second_logits(model: torch.nn.Module, out: Any) -> torch.Tensor:
    """Per-second event-class logits [B,T,28] of any model of the suite."""
    if isinstance(model, AVECLIPLocalizer):
        return model.second_class_logits(out)  # [B,T,28]
    return out.logits[..., :NUM_EVENTS]  # [B,T,28]: the baselines' background column is never a target


def pool_time(logits: torch.Tensor, pool: Pool) -> torch.Tensor:
    """Video logits [B,C] from per-second logits [B,T,C]."""
    if pool == "max":
        return logits.max(dim=1).values  # [B,C]
    if pool == "attention":
        return (logits.softmax(dim=1) * logits).sum(dim=1)  # [B,C]: each class weighs its own seconds
    raise ValueError(f"unknown pool {pool!r}; expected max or attention")


def weak_targets(video_labels: np.ndarray) -> torch.Tensor:
    """float32 [N,28] event columns of mil_labels-style video labels [N,29]."""
    labels = np.asarray(video_labels, dtype=np.float32)
    if labels.ndim != 2 or labels.shape[1] != NUM_EVENTS + 1:
        raise ValueError(f"video labels must be [N,{NUM_EVENTS + 1}] (mil_labels.h5), got shape {labels.shape}")
    return torch.from_numpy(labels[:, :NUM_EVENTS].copy())


def weak_loss(video_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-label soft-margin loss of video logits [B,28] against multi-hot targets [B,28]."""
    return F.multilabel_soft_margin_loss(video_logits, targets)


def localize(second: np.ndarray, video: np.ndarray, threshold: float) -> np.ndarray:
    """int64 [N,T]: the top video class where its per-second probability exceeds `threshold`, else background.

    second: logits [N,T,28]; video: logits [N,28].
    """
    cls = np.asarray(video).argmax(axis=-1)  # [N]
    score = np.take_along_axis(np.asarray(second), cls[:, None, None], axis=2)[..., 0]  # [N,T]
    prob = 1.0 / (1.0 + np.exp(-score.astype(np.float64)))  # [N,T]
    return np.where(prob > threshold, cls[:, None], BACKGROUND).astype(np.int64)


def choose_threshold(second: np.ndarray, video: np.ndarray, labels: np.ndarray,
                     candidates: tuple[float, ...]) -> tuple[float, dict[float, float]]:
    """The candidate with the best segment accuracy on (validation) labels [N,T]; ties -> the smallest."""
    if not candidates:
        raise ValueError("weak.thresholds is empty")
    scores = {float(t): M.segment_accuracy(localize(second, video, t), labels) for t in sorted(candidates)}
    best = max(scores.values())
    return next(t for t, s in scores.items() if s == best), scores


@torch.no_grad()
def weak_scores(model: torch.nn.Module, audio: Any, visual: Any, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    """(per-second logits [N,T,28], video logits [N,28]) as float32 numpy."""
    model.eval()
    out = model(as_float_tensor(audio), as_float_tensor(visual))
    second = second_logits(model, out)  # [N,T,28]
    return second.numpy(), pool_time(second, pool).numpy()


@dataclass
class WeakResult:
    """history: one dict per epoch; the model holds the weights of `best_epoch` (lowest val loss)."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_val_loss: float


def train_weak(model: torch.nn.Module, features: tuple[Any, Any], video_labels: np.ndarray,
               splits: dict[str, Any], cfg: TrainConfig, pool: Pool, seed: int,
               progress: bool = True) -> WeakResult:
    """Train on video-level labels [N,29] only; keep the epoch with the lowest validation weak loss.

    Build (and seed) the model before calling. Same optimiser, schedule, clipping and multi-scale
    phases as the supervised trainer (avelib.train.localizer), on the CPU.
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    gen = seed_everything(seed)
    audio, visual = as_float_tensor(features[0]), as_float_tensor(features[1])  # [N,10,Da], [N,10,Dv]
    y = weak_targets(video_labels)  # [N,28]
    if audio.shape[1] != NUM_SEGMENTS or not audio.shape[0] == visual.shape[0] == y.shape[0]:
        raise ValueError(f"features {tuple(audio.shape)}/{tuple(visual.shape)} and video labels {tuple(y.shape)} do not match")
    tr = torch.as_tensor(np.asarray(splits["train"]), dtype=torch.int64)  # [Ntr]
    va = torch.as_tensor(np.asarray(splits["val"]), dtype=torch.int64)  # [Nva]
    phases = phase_plan(cfg)
    total = sum(n for _, n in phases)
    opt = adam(model, cfg.lr, cfg.weight_decay)
    sched = make_scheduler(opt, cfg, total)
    history: list[dict[str, Any]] = []
    best_loss, best_epoch, best_state, best_windows = float("inf"), -1, cpu_state(model), None
    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return weak_loss(pool_time(second_logits(model, model(audio[idx], visual[idx])), pool), y[idx])

    bar = tqdm(range(total), desc=f"weak {type(model).__name__} seed {seed}", disable=None if progress else True)
    for epoch in bar:
        t0 = time.perf_counter()
        windows = windows_at(phases, epoch)
        set_windows(model, windows)
        losses = train_epoch(model, opt, tr, cfg, gen, batch_loss)
        sched.step()
        _, val_video = weak_scores(model, audio[va], visual[va], pool)  # [Nva,28]
        val_loss = float(weak_loss(torch.from_numpy(val_video), y[va]))
        history.append({"epoch": epoch, "train_loss": float(torch.stack(losses).double().mean()), "val_loss": val_loss,
                        "val_video_accuracy": float((val_video.argmax(1) == y[va].numpy().argmax(1)).mean()),
                        "seconds": time.perf_counter() - t0})
        if val_loss < best_loss:  # strict: the earliest best epoch wins ties
            best_loss, best_epoch, best_state, best_windows = val_loss, epoch, cpu_state(model), windows
        if progress:
            bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", val=f"{val_loss:.3f}")
    model.load_state_dict(best_state)
    set_windows(model, best_windows)
    return WeakResult(history, best_epoch, best_loss)


def weak_seed_run(model: torch.nn.Module, features: tuple[np.ndarray, np.ndarray], video_labels: np.ndarray,
                  labels: np.ndarray, splits: dict[str, Any], cfg: TrainConfig, weak: WeakConfig, seed: int,
                  progress: bool = True) -> dict[str, Any]:
    """Train one seed weakly, choose the threshold on validation, test; a JSON-ready record."""
    audio, visual = features
    va, te = np.asarray(splits["val"]), np.asarray(splits["test"])
    res = train_weak(model, features, video_labels, splits, cfg, weak.pool, seed, progress)
    threshold, by_threshold = choose_threshold(*weak_scores(model, audio[va], visual[va], weak.pool), labels[va],
                                               weak.thresholds)
    second, video = weak_scores(model, audio[te], visual[te], weak.pool)  # [Nte,10,28], [Nte,28]
    pred, fixed = localize(second, video, threshold), localize(second, video, FIXED_THRESHOLD)  # [Nte,10]
    argmax = second.argmax(axis=2)  # [Nte,10]: AVEL's rule (module docstring)
    cls = video.argmax(axis=1)  # [Nte]
    prob = 1.0 / (1.0 + np.exp(-np.take_along_axis(second, cls[:, None, None], axis=2)[..., 0]))  # [Nte,10]
    truth = weak_targets(video_labels[te]).numpy().argmax(axis=1)  # [Nte]
    return {"seed": seed, "threshold": threshold, "val_accuracy_by_threshold": by_threshold,
            "val_accuracy": by_threshold[threshold], "best_epoch": res.best_epoch, "best_val_loss": res.best_val_loss,
            "test_accuracy": M.segment_accuracy(pred, labels[te]),
            "test_accuracy_fixed": M.segment_accuracy(fixed, labels[te]),
            "test_accuracy_argmax": M.segment_accuracy(argmax, labels[te]),
            "test_video_accuracy": float((cls == truth).mean()),
            "test_correct_seconds": (pred == labels[te]).sum(axis=1).tolist(),
            "test_correct_seconds_fixed": (fixed == labels[te]).sum(axis=1).tolist(),
            "test_correct_seconds_argmax": (argmax == labels[te]).sum(axis=1).tolist(),
            "test_class": cls.tolist(), "test_probability": np.round(prob, 5).tolist(), "history": res.history}


def train_weak_seeds(features: tuple[np.ndarray, np.ndarray], video_labels: np.ndarray, labels: np.ndarray,
                  splits: dict[str, Any], kind: str, model_cfg: Any, cfg: TrainConfig, eval_cfg: Any,
                  weak: WeakConfig, out_dir: str | Path | None = None, progress: bool = True,
                  owns_next: Callable[[], bool] | None = None) -> dict[str, Any]:
    """`kind` (avelib.train.runs.build_model) trained weakly over `eval_cfg.seeds` with `cfg` (for the
    baselines: `BaselinesConfig.train_config`); the run's metrics dict.

    Keys as in train_seeds where they mean the same (test_accuracy {mean,std,per_seed}, its crossed-bootstrap
    CI, test_correct_seconds per seed and test video), plus the fixed-threshold figures, the chosen thresholds
    and test video-level accuracy. With `out_dir`, each finished seed is kept in `seed<k>.json` and not
    trained again by a rerun. With `owns_next` (one process's share, as in train_seeds) only its seeds are
    run into out_dir and {} is returned.
    """
    audio, visual = np.asarray(features[0]), np.asarray(features[1])
    records = []
    for seed in eval_cfg.seeds:
        if owns_next is not None and not owns_next():
            continue
        done = Path(out_dir) / f"seed{seed}.json" if out_dir is not None else None
        if done is not None and done.is_file():
            records.append(read_json(done))
            continue
        seed_everything(seed)  # the initial weights depend on the seed
        model = build_model(kind, model_cfg, audio.shape[-1], visual.shape[-1])
        record = weak_seed_run(model, (audio, visual), video_labels, labels, splits, cfg, weak, seed, progress)
        if done is not None:
            write_json(record, done)
        records.append(record)
    if owns_next is not None:
        return {}
    correct = [r["test_correct_seconds"] for r in records]
    rules = {f"test_accuracy{rule}{key}": value for rule in ("_fixed", "_argmax") for key, value in (
        ("", M.summarize([r[f"test_accuracy{rule}"] for r in records])),
        ("_ci", stats.accuracy_ci(stats.per_video_accuracy([r[f"test_correct_seconds{rule}"] for r in records]))))}
    return {"model": kind, "pool": weak.pool,
            "test_accuracy": M.summarize([r["test_accuracy"] for r in records]),
            "test_accuracy_ci": stats.accuracy_ci(stats.per_video_accuracy(correct)),
            "test_correct_seconds": correct, **rules,
            "val_accuracy": M.summarize([r["val_accuracy"] for r in records]),
            "test_video_accuracy": M.summarize([r["test_video_accuracy"] for r in records]),
            "chosen_threshold": [r["threshold"] for r in records], "best_epoch": [r["best_epoch"] for r in records],
            "seeds": list(eval_cfg.seeds), "example": _example(records[0], labels[np.asarray(splits["test"])])}


def _example(record: dict[str, Any], test_labels: np.ndarray, videos: int = 4) -> dict[str, Any]:
    """The first test videos of one seed, for the score-curve figure."""
    return {"seed": record["seed"], "threshold": record["threshold"],
            "probability": record["test_probability"][:videos], "labels": test_labels[:videos].tolist()}
