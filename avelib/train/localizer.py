"""Stage C: training and seed-averaged evaluation of the localizer and the baselines.

`train_model` trains any model of the suite (interface in avelib.models.baselines) on whole in-memory
feature arrays, selects the epoch on VALIDATION accuracy, and is deterministic on CPU for a seed and
resumable from `last.pt`. `evaluate_seeds` trains one model kind per seed, tunes the post-processing
L on validation, tests, and returns the metrics dict of `reports/metrics.json` (design.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from avelib.data.ave import CATEGORIES, NUM_SEGMENTS
from avelib.data.features import load_feature_set
from avelib.eval import metrics as M
from avelib.eval import stats
from avelib.eval.postprocess import choose_max_len, smooth_predictions
from avelib.io import atomic_path, write_json
from avelib.models.baselines import AVELAttention, BaselineConfig, SegmentMLP, segment_predictions
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig, localizer_checkpoint
from avelib.params import resolved
from avelib.train.contrastive import cpu_state, resolve_device
from avelib.train.seeding import seed_everything

ModelKind = Literal["aveclip", "avel", "mlp"]


@dataclass(frozen=True)
class PhaseConfig:
    """One multi-scale training phase: the active window sizes and its number of epochs."""

    windows: tuple[int, ...] = (10, 5, 3, 2)
    """Window sizes active in this phase (a subset of localizer.windows; ignored by baselines)."""
    epochs: int = 10
    """Epochs of this phase."""


@dataclass(frozen=True)
class TrainConfig:
    """params.yaml section `train` (our defaults, sized for a few hundred videos on 2 CPU cores)."""

    epochs: int = 30
    """Total epochs when `phases` is empty (all windows active)."""
    phases: tuple[PhaseConfig, ...] = (PhaseConfig((10,), 8), PhaseConfig((10, 5, 3, 2), 22))
    """Multi-scale schedule (long windows first, then all); total epochs = sum of phase epochs."""
    batch_size: int = 64
    """Training videos per step (validation and test run as one batch)."""
    lr: float = 3e-3
    """Adam learning rate (the AVE-CLIP localizer; baselines use evaluate.baseline_lr)."""
    weight_decay: float = 1e-4
    """Adam (L2) weight decay."""
    schedule: Literal["cosine", "step", "none"] = "cosine"
    """LR schedule per epoch: cosine to 0 over all epochs, step (x gamma every step_size epochs) or none."""
    step_size: int = 15
    """Epochs between LR drops for schedule=step."""
    gamma: float = 0.3
    """LR factor for schedule=step."""
    grad_clip: float = 1.0
    """Max gradient norm (0 = no clipping)."""
    bce_weight: float = 1.0
    """Weight of the BCE loss on alpha vs the event mask (AVE-CLIP)."""
    ce_weight: float = 1.0
    """Weight of the CE loss on the video class (AVE-CLIP) / per-second CE (baselines)."""
    seed: int = 0
    """Seed used when train_model is given none."""
    threads: int = 1
    """torch.set_num_threads for training (0 = leave torch's default); 1 is fastest for these tiny
    models on a shared 2-core machine (2 threads spin against each other and other processes)."""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """Where to train: the CPU (default: exact, and fastest for the small profile), CUDA or auto.
    Checkpoints and predictions are always stored as CPU tensors / numpy."""


@dataclass(frozen=True)
class EvalConfig:
    """params.yaml section `evaluate`."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds trained and tested; metrics are mean +- std over them."""
    postprocess_candidates: tuple[int, ...] = (0, 1, 2, 3)
    """Candidates for the post-processing max run length L, chosen on validation."""
    visual: Literal["mean", "single"] = "mean"
    """Visual feature file: mean of K frame embeddings or the middle frame only."""
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    """Sizes of the AVEL and MLP baselines."""
    baseline_lr: float = 1e-2
    """Adam lr replacing train.lr for the baselines (their LSTMs/MLP barely move at 3e-3 in 30 epochs)."""


@dataclass
class TrainResult:
    """history: one dict per epoch; best_* from the epoch with the highest validation accuracy."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_val_accuracy: float
    best_state: dict[str, torch.Tensor]
    best_windows: tuple[int, ...] | None
    resumed_from: int = 0


def _tensor(x: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _fingerprint(model: torch.nn.Module, audio: torch.Tensor, visual: torch.Tensor, labels: torch.Tensor) -> str:
    """Hash of the initial weights and the data: a resume only continues the very same run."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for t in (audio, visual, labels):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _phases(cfg: TrainConfig) -> list[tuple[tuple[int, ...] | None, int]]:
    if cfg.phases:
        return [(tuple(p.windows), p.epochs) for p in cfg.phases]
    return [(None, cfg.epochs)]


def _windows_at(phases: list[tuple[tuple[int, ...] | None, int]], epoch: int) -> tuple[int, ...] | None:
    end = 0
    for windows, n in phases:
        end += n
        if epoch < end:
            return windows
    return phases[-1][0]


def _set_windows(model: torch.nn.Module, windows: tuple[int, ...] | None) -> None:
    if hasattr(model, "set_windows"):
        model.set_windows(windows)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=1.0)  # constant LR


@torch.no_grad()
def predict_arrays(
    model: torch.nn.Module, audio: Any, visual: Any, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-second predictions int64 [N,10] and, for AVE-CLIP, alpha float32 [N,10]."""
    model.eval()
    device = next(model.parameters()).device
    a, v = _tensor(audio), _tensor(visual)
    preds, alphas = [], []
    for lo in range(0, a.shape[0], batch_size):
        out = model(a[lo : lo + batch_size].to(device), v[lo : lo + batch_size].to(device))
        preds.append(segment_predictions(model, out).cpu())  # [b,10]
        if hasattr(out, "alpha"):
            alphas.append(out.alpha.float().cpu())  # [b,10]
    pred = torch.cat(preds).numpy().astype(np.int64)
    return pred, (torch.cat(alphas).numpy() if alphas else None)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def train_model(
    model: torch.nn.Module,
    features: tuple[Any, Any],
    labels: Any,
    splits: dict[str, Any],
    cfg: TrainConfig,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train `model` on features=(audio [N,10,Da], visual [N,10,Dv] or [N,10,R,Dv]), labels int [N,10].

    Build (and seed) the model before calling: the initial weights are part of the run's fingerprint.
    With `out_dir`, `last.pt` is written after every epoch and a re-run with the same config, seed,
    initial weights and data resumes from it (otherwise it restarts); `best.pt` and `history.json`
    are written at the end. `stop_after` ends this call after that many epochs (interruption, for tests).
    On return the model is on the CPU with the best (validation) weights and windows.
    """
    seed = cfg.seed if seed is None else seed
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    gen = seed_everything(seed)
    audio, visual = _tensor(features[0]), _tensor(features[1])  # [N,10,Da], [N,10,(R,)Dv]
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)  # [N,10]
    if y.dim() != 2 or y.shape[1] != NUM_SEGMENTS or audio.shape[0] != y.shape[0] or visual.shape[0] != y.shape[0]:
        raise ValueError(f"features {tuple(audio.shape)}/{tuple(visual.shape)} and labels {tuple(y.shape)} do not match")
    tr = torch.as_tensor(np.asarray(splits["train"]), dtype=torch.int64)  # [Ntr]
    va = torch.as_tensor(np.asarray(splits["val"]), dtype=torch.int64)  # [Nva]
    phases = _phases(cfg)
    total = sum(n for _, n in phases)
    weights = {"bce": cfg.bce_weight, "ce": cfg.ce_weight}
    run_id = {"train": resolved(cfg), "seed": seed, "model": type(model).__name__,
              "fingerprint": _fingerprint(model, audio, visual, y)}
    device = resolve_device(cfg.device)
    model.to(device)
    audio, visual, y_dev = audio.to(device), visual.to(device), y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _scheduler(opt, cfg, total)

    history: list[dict[str, Any]] = []
    best_val, best_epoch, best_windows = -1.0, -1, None
    best_state: dict[str, torch.Tensor] = {}
    start = 0
    last = Path(out_dir) / "last.pt" if out_dir is not None else None
    if last is not None and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)  # optimizer state follows the params
        if ck.get("run") == run_id:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            torch.set_rng_state(ck["rng"])
            gen.set_state(ck["gen"])
            history, start = ck["history"], ck["epoch"]
            best_val, best_epoch = ck["best_val"], ck["best_epoch"]
            best_state = {k: v.cpu() for k, v in ck["best_state"].items()}
            best_windows = tuple(ck["best_windows"]) if ck["best_windows"] is not None else None
    resumed_from = start

    end = total if stop_after is None else min(total, start + stop_after)
    bar = tqdm(range(start, end), desc=f"train {type(model).__name__} seed {seed}", disable=None if progress else True)
    for epoch in bar:
        t0 = time.perf_counter()
        windows = _windows_at(phases, epoch)
        _set_windows(model, windows)
        model.train()
        perm = tr[torch.randperm(len(tr), generator=gen)]  # [Ntr]
        losses = []
        for lo in range(0, len(perm), cfg.batch_size):
            idx = perm[lo : lo + cfg.batch_size].to(device)  # [b]
            out = model(audio[idx], visual[idx])
            loss = model.loss(out, y_dev[idx], weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
            opt.step()
            losses.append(loss.detach())  # no host sync per step
        lr = opt.param_groups[0]["lr"]
        sched.step()
        pred, _ = predict_arrays(model, audio[va], visual[va])  # [Nva,10]
        val_acc = M.segment_accuracy(pred, y[va].numpy())  # y stays on the CPU
        history.append({"epoch": epoch, "train_loss": float(np.mean(torch.stack(losses).cpu().numpy().astype(np.float64))), "val_accuracy": val_acc,
                        "lr": lr, "windows": list(windows) if windows is not None else None,
                        "seconds": time.perf_counter() - t0})  # wall time incl. validation
        if val_acc > best_val:  # strict: the earliest best epoch wins ties
            best_val, best_epoch, best_windows = val_acc, epoch, windows
            best_state = cpu_state(model)
        if progress:
            bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", val=f"{val_acc:.3f}")
        if last is not None:
            _save_checkpoint(last, {
                "run": run_id, "epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "gen": gen.get_state(),
                "history": history, "best_val": best_val, "best_epoch": best_epoch, "best_state": best_state,
                "best_windows": list(best_windows) if best_windows is not None else None,
            })

    model.to("cpu")  # evaluation, checkpoints and inference work on the CPU copy
    if best_state:
        model.load_state_dict(best_state)
        _set_windows(model, best_windows)
    if out_dir is not None and len(history) == total:
        _save_checkpoint(Path(out_dir) / "best.pt", {"model": best_state, "epoch": best_epoch, "val_accuracy": best_val,
                                                     "windows": list(best_windows) if best_windows else None,
                                                     "params": run_id})
        write_json({"history": history, "best_epoch": best_epoch, "best_val_accuracy": best_val, "params": run_id},
                   Path(out_dir) / "history.json")
    return TrainResult(history, best_epoch, best_val, best_state, best_windows, resumed_from)


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


def evaluate_seeds(
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
) -> dict[str, Any]:
    """Train `model_kind` once per seed, choose L on validation, test; the metrics dict (and files in out_dir).

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
    if model_kind != "aveclip":
        train_cfg = dataclasses.replace(train_cfg, lr=eval_cfg.baseline_lr)
    acc, acc_raw, val_acc, chosen, epochs, seconds, histories, correct = [], [], [], [], [], [], [], []
    per_class, pr_runs, conf = [], [], np.zeros((29, 29), dtype=np.int64)
    preds: dict[str, np.ndarray] = {"test_index": te, "test_labels": labels[te]}
    for seed in eval_cfg.seeds:
        seed_everything(seed)  # the initial weights depend on the seed
        model = build_model(model_kind, model_cfg, audio.shape[-1], visual.shape[-1])
        t0 = time.perf_counter()
        res = train_model(model, (audio, visual), labels, splits, train_cfg, seed=seed,
                          out_dir=out / f"seed{seed}" if out is not None else None, progress=progress)
        seconds.append(time.perf_counter() - t0)
        val_pred, _ = predict_arrays(model, audio[va], visual[va])  # [Nva,10]
        max_len, _ = choose_max_len(val_pred, labels[va], eval_cfg.postprocess_candidates)
        raw, alpha = predict_arrays(model, audio[te], visual[te])  # [Nte,10]
        post = smooth_predictions(raw, max_len)  # [Nte,10]
        if out is not None and isinstance(model, AVECLIPLocalizer):
            ck = localizer_checkpoint(model, audio.shape[-1], visual.shape[-1], max_len, encoder, eval_cfg.visual,
                                      res.best_windows, epoch=res.best_epoch, val_accuracy=res.best_val_accuracy)
            _save_checkpoint(out / f"seed{seed}" / "best.pt", ck)
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
        preds[f"raw_seed{seed}"] = raw
        if alpha is not None:
            preds[f"alpha_seed{seed}"] = alpha
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
    if out is not None:
        write_json(metrics, out / "metrics.json")
        with atomic_path(out / "predictions.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **preds)
    return metrics


VARIANTS: tuple[tuple[str, ModelKind, str | None], ...] = (
    ("aveclip", "aveclip", None),
    ("aveclip_audio_only", "aveclip", "audio"),
    ("aveclip_visual_only", "aveclip", "visual"),
    ("avel", "avel", None),
    ("mlp", "mlp", None),
)


def evaluate_variants(
    features: str | Path | tuple[Any, Any],
    labels: Any,
    splits: dict[str, Any],
    localizer_cfg: LocalizerConfig,
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    out_dir: str | Path | None = None,
    dataset: str = "unknown",
    progress: bool = True,
    names: tuple[str, ...] | None = None,
    encoder: str = "unknown",
) -> dict[str, Any]:
    """The evaluation stage: AVE-CLIP, its audio-only and visual-only variants, AVEL and the MLP
    (`names` picks a subset of VARIANTS by name).

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
            cfg: LocalizerConfig | BaselineConfig = (
                localizer_cfg if modality is None else dataclasses.replace(localizer_cfg, modality=modality)
            )
        else:
            cfg = eval_cfg.baseline
        runs[name] = evaluate_seeds(features, labels, splits, kind, cfg, train_cfg, eval_cfg,
                                    out / name if out is not None else None, dataset, progress, encoder)
    combined = {**runs.get("aveclip", {}), "variants": runs}
    if out is not None:
        write_json(combined, out / "metrics.json")
    return combined
