"""Stage C: training of the localizer and the baselines on extracted features.

`train_model` trains any model of the suite (interface in avelib.models.baselines) on whole in-memory
feature arrays, selects the epoch on VALIDATION accuracy, and is deterministic on CPU for a seed and
resumable from `last.pt` (avelib.train.checkpointing). The seed-averaged runs are in avelib.train.runs.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from avelib.data.ave import NUM_SEGMENTS
from avelib.eval import metrics as M
from avelib.eval.peer import TestSelection
from avelib.io import write_json
from avelib.models.baselines import BaselineConfig, segment_predictions
from avelib.models.device import cpu_state, resolve_device
from avelib.params import resolved
from avelib.train.checkpointing import LAST, load_resume_point, save_resume_point, save_torch
from avelib.train.optim import adam
from avelib.train.seeding import seed_everything

RESUME_POINT_SECONDS = 10.0
"""Least wall time between two `last.pt` writes (and always after the last epoch of a call): an epoch of
the small profile takes ~0.4 s, and writing the resume point every epoch cost 13 % of a run."""


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
    """Adam learning rate (the AVE-CLIP localizer; the baselines use `baselines.lr`)."""
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

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds trained and tested; metrics are mean +- std over them."""
    postprocess_candidates: tuple[int, ...] = (0, 1, 2, 3)
    """Candidates for the post-processing max run length L, chosen on validation."""
    visual: Literal["mean", "single"] = "mean"
    """Visual feature file: mean of K frame embeddings or the middle frame only."""


@dataclass(frozen=True)
class AVELRecipe:
    """AVEL's recipe as its code states it (AVE-ECCV18 supervised_main.py, weak_supervised_main.py): Adam with no
    weight decay or clipping, batch 64, lr 1e-3 and StepLR(15,000 iterations, 0.1), which never fires in 300
    epochs of SynthAVE's 4 batches (on AVE's 52 batches it fires at epoch 288), hence a constant lr here."""

    lr: float = 1e-3
    epochs: int = 300
    weak_epochs: int = 250
    batch_size: int = 64
    weight_decay: float = 0.0
    grad_clip: float = 0.0


@dataclass(frozen=True)
class BaselinesConfig:
    """params.yaml section `baselines`: the AVEL and MLP comparison models (read by evaluate and weak)."""

    lr: float = 1e-2
    """Adam lr replacing train.lr for the MLP (ours: it barely moves at 3e-3 in 30 epochs)."""
    avel: AVELRecipe = field(default_factory=AVELRecipe)
    """AVEL's own training recipe, in place of the localizer's."""
    model: BaselineConfig = field(default_factory=BaselineConfig)
    """Sizes of the AVEL and MLP baselines."""

    def train_config(self, train: "TrainConfig", kind: str, weak: bool = False) -> "TrainConfig":
        """Training settings of baseline `kind`: AVEL's recipe, or the localizer's with the MLP's lr."""
        if kind != "avel":
            return replace(train, lr=self.lr)
        r = self.avel
        return replace(train, lr=r.lr, epochs=r.weak_epochs if weak else r.epochs, phases=(), batch_size=r.batch_size,
                       weight_decay=r.weight_decay, grad_clip=r.grad_clip, schedule="none")


@dataclass
class TrainResult:
    """history: one dict per epoch; best_* from the epoch with the highest validation accuracy."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_val_accuracy: float
    best_state: dict[str, torch.Tensor]
    best_windows: tuple[int, ...] | None
    resumed_from: int = 0


def as_float_tensor(x: Any) -> torch.Tensor:
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


def phase_plan(cfg: TrainConfig) -> list[tuple[tuple[int, ...] | None, int]]:
    if cfg.phases:
        return [(tuple(p.windows), p.epochs) for p in cfg.phases]
    return [(None, cfg.epochs)]


def windows_at(phases: list[tuple[tuple[int, ...] | None, int]], epoch: int) -> tuple[int, ...] | None:
    end = 0
    for windows, n in phases:
        end += n
        if epoch < end:
            return windows
    return phases[-1][0]


def set_windows(model: torch.nn.Module, windows: tuple[int, ...] | None) -> None:
    if hasattr(model, "set_windows"):
        model.set_windows(windows)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total: int) -> torch.optim.lr_scheduler.LRScheduler:
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
    a, v = as_float_tensor(audio), as_float_tensor(visual)
    preds, alphas = [], []
    for lo in range(0, a.shape[0], batch_size):
        out = model(a[lo : lo + batch_size].to(device), v[lo : lo + batch_size].to(device))
        preds.append(segment_predictions(model, out).cpu())  # [b,10]
        if hasattr(out, "alpha"):
            alphas.append(out.alpha.float().cpu())  # [b,10]
    pred = torch.cat(preds).numpy().astype(np.int64)
    return pred, (torch.cat(alphas).numpy() if alphas else None)


def train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, rows: torch.Tensor, cfg: TrainConfig,
                gen: torch.Generator, batch_loss: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """One epoch over `rows` [N] shuffled by `gen`, in batches of cfg.batch_size, clipped as cfg says;
    each step's loss, detached (no host sync per step). Shared by the supervised and the weak trainer."""
    model.train()
    perm = rows[torch.randperm(len(rows), generator=gen)]  # [N]
    losses = []
    for lo in range(0, len(perm), cfg.batch_size):
        loss = batch_loss(perm[lo : lo + cfg.batch_size])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
        opt.step()
        losses.append(loss.detach())
    return losses


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
    test_selection: TestSelection | None = None,
) -> TrainResult:
    """Train `model` on features=(audio [N,10,Da], visual [N,10,Dv] or [N,10,R,Dv]), labels int [N,10].

    Build (and seed) the model before calling: the initial weights are part of the run's fingerprint.
    With `out_dir`, `last.pt` is written at most every RESUME_POINT_SECONDS and after the last epoch of the
    call, and a re-run with the same config, seed, initial weights and data resumes from it (otherwise it
    restarts); `best.pt` and `history.json` are written at the end. `stop_after` ends this call after that many epochs (interruption, for tests).
    `test_selection` also scores the test split after every epoch for the peers' protocol (avelib.eval.peer);
    it reads no RNG, so the run is the same with or without it.
    On return the model is on the CPU with the best (validation) weights and windows.
    """
    seed = cfg.seed if seed is None else seed
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    gen = seed_everything(seed)
    audio, visual, y = _checked_inputs(features, labels)
    run_id = {"train": resolved(cfg), "seed": seed, "model": type(model).__name__,
              "fingerprint": _fingerprint(model, audio, visual, y)}
    device = resolve_device(cfg.device)
    data = _Data.on(device, audio, visual, y, splits)
    model.to(device)
    opt = adam(model, cfg.lr, cfg.weight_decay)
    total = sum(n for _, n in phase_plan(cfg))
    state = _State(model, opt, make_scheduler(opt, cfg, total), gen, run_id,
                   Path(out_dir) / LAST if out_dir is not None else None, test_selection)
    state.resume(total)
    resumed_from = state.epoch
    _train_epochs(state, data, cfg, total if stop_after is None else min(total, resumed_from + stop_after), progress)
    model.to("cpu")  # evaluation, checkpoints and inference work on the CPU copy
    if state.best_state:
        model.load_state_dict(state.best_state)
        set_windows(model, state.best_windows)
    if out_dir is not None and len(state.history) == total:
        state.write_best(Path(out_dir))
    return TrainResult(state.history, state.best_epoch, state.best_val, state.best_state, state.best_windows,
                       resumed_from)


def _checked_inputs(features: tuple[Any, Any], labels: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(audio, visual, labels) as tensors on the CPU, their sizes checked against each other."""
    audio, visual = as_float_tensor(features[0]), as_float_tensor(features[1])  # [N,10,Da], [N,10,(R,)Dv]
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)  # [N,10]
    if y.dim() != 2 or y.shape[1] != NUM_SEGMENTS or audio.shape[0] != y.shape[0] or visual.shape[0] != y.shape[0]:
        raise ValueError(f"features {tuple(audio.shape)}/{tuple(visual.shape)} and labels {tuple(y.shape)} do not match")
    return audio, visual, y


@dataclass(frozen=True)
class _Data:
    """A run's features and labels on the training device, the labels on the CPU too (scoring), and its split rows."""

    audio: torch.Tensor  # [N,10,Da]
    visual: torch.Tensor  # [N,10,(R,)Dv]
    labels: torch.Tensor  # int64 [N,10], CPU
    labels_on_device: torch.Tensor  # int64 [N,10]
    train: torch.Tensor  # int64 [Ntr]
    val: torch.Tensor  # int64 [Nva]

    @classmethod
    def on(cls, device: torch.device, audio: torch.Tensor, visual: torch.Tensor, labels: torch.Tensor,
           splits: dict[str, Any]) -> "_Data":
        train, val = (torch.as_tensor(np.asarray(splits[k]), dtype=torch.int64) for k in ("train", "val"))
        return cls(audio.to(device), visual.to(device), labels, labels.to(device), train, val)

    def loss(self, model: torch.nn.Module, rows: torch.Tensor, weights: dict[str, float]) -> torch.Tensor:
        idx = rows.to(self.audio.device)  # [b]
        return model.loss(model(self.audio[idx], self.visual[idx]), self.labels_on_device[idx], weights)

    def predictions(self, model: torch.nn.Module, rows: Any) -> np.ndarray:
        """Per-second predictions int64 [n,10] of `rows`."""
        rows = torch.as_tensor(rows, dtype=torch.int64)
        return predict_arrays(model, self.audio[rows], self.visual[rows])[0]

    def val_accuracy(self, model: torch.nn.Module) -> float:
        return M.segment_accuracy(self.predictions(model, self.val), self.labels[self.val].numpy())


@dataclass
class _State:
    """A run's resume point, where it goes and what it restores: the weights, optimizer, scheduler, shuffling RNG and
    peer-protocol record, and the epochs so far with the best (validation) one's accuracy, weights and windows."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    run_id: dict[str, Any]
    last: Path | None
    test_selection: TestSelection | None
    epoch: int = 0  # epochs done
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = -1.0
    best_epoch: int = -1
    best_windows: tuple[int, ...] | None = None
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def resume(self, total: int) -> None:
        """Continue from `last` when the same run wrote it (optimizer state follows the params)."""
        seed = self.run_id["seed"]
        ck = load_resume_point(self.last, self.run_id, f"train seed {seed}") if self.last is not None else None
        if ck is None:
            return
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.gen.set_state(ck["gen"])
        self.history, self.epoch = ck["history"], ck["epoch"]
        self.best_val, self.best_epoch = ck["best_val"], ck["best_epoch"]
        self.best_state = {k: v.cpu() for k, v in ck["best_state"].items()}
        self.best_windows = tuple(ck["best_windows"]) if ck["best_windows"] is not None else None
        if self.test_selection is not None:
            if ck.get("test_selection") is None:
                raise ValueError(f"{self.last}: written without the test-split record of the peer protocol; delete it to retrain")
            self.test_selection.load(ck["test_selection"])
        done = " (complete: not trained again)" if self.epoch >= total else ""
        print(f"train {type(self.model).__name__} seed {seed}: resumed from {self.last} after epoch {self.epoch} "
              f"of {total}{done}")

    def record(self, entry: dict[str, Any], windows: tuple[int, ...] | None) -> None:
        """Add an epoch's history entry; keep its weights when its validation accuracy is the best so far."""
        self.history.append(entry)
        self.epoch = entry["epoch"] + 1
        if entry["val_accuracy"] > self.best_val:  # strict: the earliest best epoch wins ties
            self.best_val, self.best_epoch, self.best_windows = entry["val_accuracy"], entry["epoch"], windows
            self.best_state = cpu_state(self.model)

    def save(self) -> None:
        """Write the resume point `last`."""
        save_resume_point(self.last, self.run_id, epoch=self.epoch, model=self.model.state_dict(),
                          optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(), gen=self.gen.get_state(),
                          history=self.history, best_val=self.best_val, best_epoch=self.best_epoch,
                          best_state=self.best_state,
                          best_windows=list(self.best_windows) if self.best_windows is not None else None,
                          test_selection=self.test_selection.state() if self.test_selection is not None else None)

    def write_best(self, out_dir: Path) -> None:
        """`best.pt` (the best epoch's weights and windows) and `history.json` of a finished run."""
        save_torch(out_dir / "best.pt", {"model": self.best_state, "epoch": self.best_epoch,
                                         "val_accuracy": self.best_val,
                                         "windows": list(self.best_windows) if self.best_windows else None,
                                         "params": self.run_id})
        write_json({"history": self.history, "best_epoch": self.best_epoch, "best_val_accuracy": self.best_val,
                    "params": self.run_id}, out_dir / "history.json")


def _train_epochs(state: _State, data: _Data, cfg: TrainConfig, end: int, progress: bool) -> None:
    """Epochs `state.epoch` .. end - 1; the resume point is written at most every RESUME_POINT_SECONDS and after
    the last of them."""
    phases = phase_plan(cfg)
    saved_at = time.perf_counter()
    desc = f"train {type(state.model).__name__} seed {state.run_id['seed']}"
    bar = tqdm(range(state.epoch, end), desc=desc, disable=None if progress else True)
    for epoch in bar:
        windows = windows_at(phases, epoch)
        state.record(_epoch(state, data, cfg, epoch, windows), windows)
        if progress:
            latest = state.history[-1]
            bar.set_postfix(loss=f"{latest['train_loss']:.3f}", val=f"{latest['val_accuracy']:.3f}")
        if state.last is not None and (epoch + 1 == end or time.perf_counter() - saved_at >= RESUME_POINT_SECONDS):
            saved_at = time.perf_counter()
            state.save()


def _epoch(state: _State, data: _Data, cfg: TrainConfig, epoch: int, windows: tuple[int, ...] | None) -> dict[str, Any]:
    """Train one epoch with `windows` active and validate; its history entry. The peer protocol's record also
    gets the epoch's test predictions."""
    t0 = time.perf_counter()
    set_windows(state.model, windows)
    weights = {"bce": cfg.bce_weight, "ce": cfg.ce_weight}
    losses = train_epoch(state.model, state.opt, data.train, cfg, state.gen,
                         lambda rows: data.loss(state.model, rows, weights))
    lr = state.opt.param_groups[0]["lr"]
    state.sched.step()
    entry = {"epoch": epoch, "train_loss": float(np.mean(torch.stack(losses).cpu().numpy().astype(np.float64))),
             "val_accuracy": data.val_accuracy(state.model), "lr": lr,
             "windows": list(windows) if windows is not None else None,
             "seconds": time.perf_counter() - t0}  # wall time incl. validation
    if state.test_selection is not None:
        state.test_selection.update(epoch, data.predictions(state.model, state.test_selection.rows))
    return entry
