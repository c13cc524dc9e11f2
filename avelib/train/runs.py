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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from avelib.data.ave import CATEGORIES
from avelib.data.features import load_feature_set
from avelib.eval import metrics as M
from avelib.eval import peer, stats
from avelib.eval.peer import TestSelection
from avelib.eval.postprocess import choose_max_len, smooth_predictions
from avelib.io import atomic_path, write_json
from avelib.models.baselines import AVELAttention, BaselineConfig, SegmentMLP
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig, localizer_checkpoint
from avelib.params import resolved
from avelib.train.checkpointing import LAST, save_torch
from avelib.train.localizer import BaselinesConfig, EvalConfig, TrainConfig, TrainResult, predict_arrays, train_model
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


@dataclass(frozen=True)
class _Run:
    """What every seed of one `train_seeds` call shares: the model and its configs, the data, the output folder."""

    kind: ModelKind
    model_cfg: LocalizerConfig | BaselineConfig
    train_cfg: TrainConfig
    eval_cfg: EvalConfig
    audio: np.ndarray  # [N,10,Da]
    visual: np.ndarray  # [N,10,(R,)Dv]
    labels: np.ndarray  # int64 [N,10]
    splits: dict[str, Any]
    out: Path | None

    @property
    def val(self) -> np.ndarray:
        return np.asarray(self.splits["val"])

    @property
    def test(self) -> np.ndarray:
        return np.asarray(self.splits["test"])

    def seed_dir(self, seed: int) -> Path | None:
        return self.out / f"seed{seed}" if self.out is not None else None

    def test_selection(self) -> TestSelection:
        """The peers' protocol record of one seed (avelib.eval.peer)."""
        return TestSelection(self.test, self.labels[self.test], tuple(self.eval_cfg.postprocess_candidates))


@dataclass(frozen=True)
class _Seed:
    """One evaluated seed: its L chosen on validation, predictions int64 [N,10] and what its training recorded."""

    seed: int
    val_pred: np.ndarray  # [Nva,10]
    max_len: int
    raw: np.ndarray  # [Nte,10]
    post: np.ndarray  # [Nte,10]: raw post-processed with max_len
    alpha: np.ndarray | None  # [Nte,10], AVE-CLIP's event relevance
    best_epoch: int
    history: list[dict[str, Any]]
    seconds: float
    selection: TestSelection | None


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
    owns_next: Callable[[], bool] | None = None,
    trained: str | Path | None = None,
    peer_protocol: bool = False,
) -> dict[str, Any]:
    """Train `model_kind` once per seed, choose L on validation, test; the metrics dict (and files in out_dir).

    `peer_protocol` also records the test accuracy the peers' protocol would report (epoch and L chosen
    on the test split, avelib.eval.peer) under `test_selected`, with its inflation over ours.

    `trained`: the out_dir of a run with the very same training (only evaluation settings differ); each
    seed continues from its `seed<k>/last.pt` instead of training again (the resume check proves the match).

    With `owns_next` (one process's share of the stage's jobs, avelib.distributed: asked once per seed, in
    order, whether this process runs it) only its seeds are trained into out_dir and {} is returned: the
    stage's own process evaluates them afterwards, resuming each.

    Keys: dataset, model, test_accuracy / test_accuracy_no_postprocess / val_accuracy {mean,std,per_seed},
    test_accuracy_ci (crossed bootstrap, avelib.eval.stats), test_correct_seconds (per seed, per test video),
    chosen_max_len (per seed), per_class_accuracy (class name -> mean over seeds), confusion_matrix
    (29x29, summed over seeds, post-processed), event_background_pr (mean over seeds), best_epoch,
    train_seconds, history (per seed), params. out_dir gets `metrics.json`, `predictions.npz` and a
    folder per seed with its checkpoints; for AVE-CLIP `seed<k>/best.pt` is the inference checkpoint
    (avelib.models.localizer.localizer_checkpoint, with the chosen L and `encoder` recorded).
    """
    run = _Run(model_kind, model_cfg, train_cfg, eval_cfg, *_feature_arrays(features, eval_cfg.visual),
               np.asarray(labels, dtype=np.int64), splits, Path(out_dir) if out_dir is not None else None)
    seeds: list[_Seed] = []
    for seed in eval_cfg.seeds:
        if owns_next is not None and not owns_next():
            continue
        selection = run.test_selection() if peer_protocol else None
        model, res, seconds = _train_seed(run, seed, Path(trained) if trained is not None else None, selection,
                                          progress)
        if owns_next is None:
            seeds.append(_evaluate_seed(run, seed, model, res, seconds, selection, encoder, dataset))
    if owns_next is not None:
        return {}
    metrics = _metrics(run, seeds, dataset)
    if run.out is not None:
        _write_run(run.out, metrics, _predictions(run, seeds))
    return metrics


def _feature_arrays(features: str | Path | tuple[Any, Any], visual: str) -> tuple[np.ndarray, np.ndarray]:
    """(audio, visual) feature arrays: given, or read from a feature folder (its `visual` file)."""
    if isinstance(features, (str, Path)):
        return load_feature_set(features, visual=visual)
    return np.asarray(features[0]), np.asarray(features[1])


def _train_seed(run: _Run, seed: int, trained: Path | None, selection: TestSelection | None,
                progress: bool) -> tuple[torch.nn.Module, TrainResult, float]:
    """One seed's model, trained (or resumed, or continued from the `trained` run's), and its training wall time."""
    seed_everything(seed)  # the initial weights depend on the seed
    model = build_model(run.kind, run.model_cfg, run.audio.shape[-1], run.visual.shape[-1])
    seed_dir = run.seed_dir(seed)
    if trained is not None and seed_dir is not None:
        _continue_from(trained / f"seed{seed}" / LAST, seed_dir / LAST)
    t0 = time.perf_counter()
    res = train_model(model, (run.audio, run.visual), run.labels, run.splits, run.train_cfg, seed=seed,
                      out_dir=seed_dir, progress=progress, test_selection=selection)
    return model, res, time.perf_counter() - t0


def _evaluate_seed(run: _Run, seed: int, model: torch.nn.Module, res: TrainResult, seconds: float,
                   selection: TestSelection | None, encoder: str, dataset: str) -> _Seed:
    """Choose L on validation, predict the test split; an AVE-CLIP seed with an out_dir gets its inference
    checkpoint."""
    va, te = run.val, run.test
    val_pred, _ = predict_arrays(model, run.audio[va], run.visual[va])  # [Nva,10]
    max_len, _ = choose_max_len(val_pred, run.labels[va], run.eval_cfg.postprocess_candidates)
    raw, alpha = predict_arrays(model, run.audio[te], run.visual[te])  # [Nte,10]
    seed_dir = run.seed_dir(seed)
    if seed_dir is not None and isinstance(model, AVECLIPLocalizer):
        save_torch(seed_dir / "best.pt", localizer_checkpoint(
            model, run.audio.shape[-1], run.visual.shape[-1], max_len, encoder, run.eval_cfg.visual, res.best_windows,
            epoch=res.best_epoch, val_accuracy=res.best_val_accuracy, dataset=dataset))
    return _Seed(seed, val_pred, max_len, raw, smooth_predictions(raw, max_len), alpha, res.best_epoch, res.history,
                 seconds, selection)


def _metrics(run: _Run, seeds: list[_Seed], dataset: str) -> dict[str, Any]:
    """The metrics dict of `train_seeds` (keys in its docstring) from the evaluated seeds."""
    truth = run.labels[run.test]  # [Nte,10]
    correct = [(s.post == truth).sum(axis=1).tolist() for s in seeds]  # [S][Nte] correct seconds per test video
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "model": run.kind,
        "test_accuracy": M.summarize([M.segment_accuracy(s.post, truth) for s in seeds]),
        "test_accuracy_ci": stats.accuracy_ci(stats.per_video_accuracy(correct)),
        "test_correct_seconds": correct,
        "test_accuracy_no_postprocess": M.summarize([M.segment_accuracy(s.raw, truth) for s in seeds]),
        "val_accuracy": M.summarize([M.segment_accuracy(s.val_pred, run.labels[run.val]) for s in seeds]),
        "chosen_max_len": [s.max_len for s in seeds],
        "best_epoch": [s.best_epoch for s in seeds],
        "train_seconds": [s.seconds for s in seeds],
        "per_class_accuracy": _per_class_means([M.per_class_accuracy(s.post, truth) for s in seeds]),
        "confusion_matrix": sum((M.confusion_matrix(s.post, truth) for s in seeds),
                                np.zeros((29, 29), dtype=np.int64)).tolist(),
        "event_background_pr": _pr_means([M.event_background_pr(s.post, truth) for s in seeds]),
        "history": [s.history for s in seeds],
        "params": {"model": resolved(run.model_cfg), "train": resolved(run.train_cfg),
                   "evaluate": resolved(run.eval_cfg)},
    }
    selections = [s.selection for s in seeds if s.selection is not None]
    if selections:
        metrics["test_selected"] = peer.summary(selections, metrics)
    return metrics


def _per_class_means(per_class: list[np.ndarray]) -> dict[str, float | None]:
    """Class name -> mean accuracy over the seeds that have test segments of it (None: no seed has)."""
    stacked = np.stack(per_class)  # [S,29], NaN where a class has no test segment
    seen = ~np.isnan(stacked)
    pc = np.where(seen.any(0), np.where(seen, stacked, 0.0).sum(0) / np.maximum(seen.sum(0), 1), np.nan)  # [29]
    names = list(CATEGORIES) + ["background"]
    return {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, pc)}


def _pr_means(pr_runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Event and background precision, recall and F1, each a mean over the seeds."""
    return {side: {k: _nanmean([r[side][k] for r in pr_runs]) for k in ("precision", "recall", "f1")}
            for side in ("event", "background")}


def _predictions(run: _Run, seeds: list[_Seed]) -> dict[str, np.ndarray]:
    """`predictions.npz`: the test rows and labels, then each seed's post-processed and raw predictions and alpha."""
    preds = {"test_index": run.test, "test_labels": run.labels[run.test]}
    for s in seeds:
        preds |= {f"pred_seed{s.seed}": s.post, f"raw_seed{s.seed}": s.raw}
        if s.alpha is not None:
            preds[f"alpha_seed{s.seed}"] = s.alpha
    return preds


def _write_run(out: Path, metrics: dict[str, Any], preds: dict[str, np.ndarray]) -> None:
    write_json(metrics, out / "metrics.json")
    with atomic_path(out / "predictions.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **preds)


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
    owns_next: Callable[[], bool] | None = None,
    baselines: BaselinesConfig = BaselinesConfig(),
    peer_protocol: bool = False,
) -> dict[str, Any]:
    """The evaluation stage: AVE-CLIP, its audio-only and visual-only variants, and AVEL and the MLP
    with `baselines` (their sizes and learning rate); `names` picks a subset of VARIANTS by name
    (`localizer_cfg` may be None when it holds no AVE-CLIP run). `owns_next`: one process's share of
    the seeds of every run, as in train_seeds ({} for each run, and nothing written here).

    Returns the AVE-CLIP metrics at the top level (the `reports/metrics.json` format) with a
    `variants` key holding every run's metrics (AVE-CLIP included) by name; each run also writes
    `<out_dir>/<name>/metrics.json`, and `<out_dir>/metrics.json` gets the combined dict.
    """
    features = _feature_arrays(features, eval_cfg.visual)  # read once for every run
    out = Path(out_dir) if out_dir is not None else None
    runs: dict[str, Any] = {}
    for name, kind, modality in VARIANTS:
        if names is not None and name not in names:
            continue
        cfg, train = _variant_configs(name, kind, modality, localizer_cfg, train_cfg, baselines)
        runs[name] = train_seeds(features, labels, splits, kind, cfg, train, eval_cfg,
                                 out / name if out is not None else None, dataset, progress, encoder, owns_next,
                                 peer_protocol=peer_protocol)
    combined = {**runs.get("aveclip", {}), "variants": runs}
    if out is not None and owns_next is None:
        write_json(combined, out / "metrics.json")
    return combined


def _variant_configs(name: str, kind: ModelKind, modality: str | None, localizer_cfg: LocalizerConfig | None,
                     train_cfg: TrainConfig,
                     baselines: BaselinesConfig) -> tuple[LocalizerConfig | BaselineConfig, TrainConfig]:
    """The model and training configs of one VARIANTS run."""
    if kind != "aveclip":
        return baselines.model, baselines.train_config(train_cfg, kind)
    if localizer_cfg is None:
        raise ValueError(f"run {name!r} is an AVE-CLIP run: it needs a localizer config")
    return (localizer_cfg if modality is None else dataclasses.replace(localizer_cfg, modality=modality)), train_cfg
