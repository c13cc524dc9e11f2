"""Stage A: contrastive fine-tuning of both AudioCLIP towers on (1-s audio, frame) pairs.

Positives are (audio of a second, one random frame of the same second) taken from *event* seconds of
*training* videos; every batch holds at most one second per video, so no other pair in the batch can be
a hidden positive of the same event (false negative). The loss is AudioCLIP's symmetric audio<->image
cross-entropy plus `fbsp_weight` times its FBSP regulariser. After every epoch the towers are scored by
audio->image and image->audio recall@k over every event second of the validation videos (`val_frames`
frames each; a hit is a pair of the query's own video), with a bootstrap CI over videos; the epoch with
the best validation audio->image R@1 is kept (design default of ours, see spec/ave-clip.md).

With `label_weight` > 0 a `LabelTower` (class-name embeddings, the text tower's stand-in) adds
AudioCLIP's audio-text and image-text terms: the `pretrain` stage uses this on its separate pool. Stage
A itself keeps `label_weight` = 0 (audio-image only, as in AVE-CLIP). `best.pt` holds the towers only.

Outputs in `out_dir`: `last.pt` (resume point after each finished epoch, avelib.train.checkpointing), `best.pt` (via
`avelib.models.audioclip.save_checkpoint`, loadable with `AudioCLIP.from_checkpoint`), `history.json`
and the DVC plot files `plots/finetune_loss.csv`, `plots/finetune_recall.csv` (avelib.eval.results).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from avelib.data.ave import BACKGROUND, NUM_SEGMENTS
from avelib.eval.retrieval import retrieval_recall
from avelib.io import read_json
from avelib.models.device import cpu_state, prepare_model, resolve_device
from avelib.models.label_tower import LabelTower
from avelib.params import resolved
from avelib.train.objective import select_layers
from avelib.train.checkpointing import LAST, load_resume_point, save_resume_point, weights_sha256
from avelib.train.pairs import check_cache_matches_model, embed_pairs, event_videos, sample_epoch_batches, validation_pairs
from avelib.train.finetune_record import (BEST, HISTORY, comparable, data_fingerprint, load_best_state, model_config,
                                          save_best, write_outputs)
from avelib.train.finetune_step import FinetuneStep
from avelib.train.seeding import seed_everything

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class FinetuneConfig:
    """params.yaml section `finetune` (stage A). All values are design defaults of ours."""

    epochs: int = 10
    """Number of passes of the schedule (each epoch = `passes_per_epoch` shuffles of the training videos)."""
    batch_size: int = 32
    """Pairs per step, at most one second per video (larger = more negatives)."""
    passes_per_epoch: int = 2
    """How many shuffled passes over the training videos make one epoch (each pass draws a new second/frame)."""
    max_pairs_per_epoch: int | None = None
    """Cap on the pairs of one epoch (for speed on the full dataset); null = no cap."""
    layers: Literal["all", "heads"] = "all"
    """Which parameters train: all of both towers, or their heads (avelib.train.objective.HEADS)."""
    pairs: Literal["aligned", "clip"] = "aligned"
    """aligned: an event second's audio and one of its own frames (stage A); clip: an audio second and a
    frame of any second, every second of a clip labelled with its class (pretraining on the AudioSet-like
    pool, avelib.data.pool)."""
    lr: float = 1e-4
    """AdamW peak learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay, applied to weight matrices/kernels only (not biases, norms, logit scales)."""
    warmup_fraction: float = 0.1
    """Fraction of all steps with linear warm-up from 0 to `lr`, then cosine decay to `min_lr_ratio * lr`."""
    min_lr_ratio: float = 0.0
    """Final learning rate of the cosine schedule, as a fraction of `lr`."""
    logit_scale_init: float | None = None
    """Set exp(logit_scale_ai) to this before fine-tuning (null = keep the model's: 100 in AudioCLIP
    checkpoints and in a random init). Random-init towers learn much better from CLIP's 1/0.07 = 14.3."""
    fbsp_weight: float = 1.0
    """Weight of AudioCLIP's FBSP regulariser added whenever audio passes through."""
    label_weight: float = 0.0
    """Weight of the audio-label + image-label terms (class names as text, see avelib.models.label_tower);
    0 = audio-image only (stage A of AVE-CLIP). The `pretrain` stage sets it."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value; null = no clipping."""
    recall_ks: tuple[int, ...] = (1, 5)
    """k of the validation recall@k: retrieval among all event-second pairs of the validation videos,
    a hit when the top k hold a pair of the query's own video."""
    val_frames: int = 2
    """Frames per validation event second (evenly spaced of the K cached)."""
    eval_batch_size: int = 128
    """Batch size of the validation embedding pass."""
    eval_initial: bool = True
    """Also score the towers before fine-tuning (epoch 0); epoch 0 may then win the selection."""
    num_workers: int = 0
    """DataLoader worker processes gathering batches from the memmapped cache (0 = in the main process)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """"auto" = CUDA when available, else CPU."""
    amp: bool = True
    """bf16 autocast on CUDA (ignored on the CPU, which runs plain fp32)."""
    channels_last: bool = True
    """channels_last memory format for the towers' conv kernels and image batches (faster with oneDNN on
    the CPU and with cuDNN)."""
    seed: int = 0
    """Seed of the model init (small profile), the batch sampling and the validation pairs."""


@dataclass
class FinetuneResult:
    """What `finetune` returns; `model` holds the weights of `best_epoch`."""

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float
    out_dir: Path
    completed: bool
    chance: dict[str, float] = field(default_factory=dict)
    grid: list[dict[str, Any]] = field(default_factory=list)  # the recipe grid's table (avelib.train.recipe_grid)


# ----------------------------------------------------------------------------------------------------
# run identity and files


def selection_key(entry: Mapping[str, Any], ks: tuple[int, ...]) -> tuple[float, ...]:
    """Validation audio->image R@1 decides; a2i recall at larger k breaks ties (earliest epoch wins)."""
    return tuple(entry[f"a2i_r{k}"] for k in sorted(ks))


# ----------------------------------------------------------------------------------------------------
# the stage
def finetune(
    model: nn.Module,
    cache: Any,
    labels: np.ndarray,
    splits: Mapping[str, np.ndarray],
    cfg: FinetuneConfig,
    out_dir: str | Path,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> FinetuneResult | None:
    """Contrastively fine-tune both towers of `model` on `cache`; see the module docstring.

    labels: int64 [N,10] segment labels (28 = background) in cache row order; splits: "train", "val"
    index arrays. Resumes from `out_dir/last.pt` when it was written by the same run. `stop_after_epoch`
    ends this call after that epoch (as an interruption would), leaving a resumable `last.pt`.
    As `rank` of a torchrun `world` > 1 (data parallel, avelib.distributed): every rank encodes its
    share of each batch, the loss is taken on the gathered batch and the gradients are summed; rank 0
    alone validates and writes the files and returns the result, the other ranks return None.
    """
    run = _Run.of(model, cache, np.asarray(labels), splits, cfg, Path(out_dir), world)
    batches_per_epoch = len(run.batches(0))
    if batches_per_epoch == 0:
        raise ValueError("finetune: no batch of >= 2 pairs per epoch; raise batch_size or max_pairs_per_epoch")
    model = prepare_model(model, run.device, cfg.channels_last)
    select_layers(model, cfg.layers)
    label_tower = _label_tower(model, cfg, run.device, int(run.labels.max()) + 1 if run.clip else BACKGROUND)
    step = FinetuneStep(model, label_tower, cfg, cfg.epochs * batches_per_epoch, run.device, rank, world)
    start_epoch, record = _start(run, step, lead=rank == 0)
    if world > 1:
        if cfg.batch_size < 2 * world:
            raise ValueError(f"finetune.batch_size {cfg.batch_size} leaves a rank of {world} without pairs; "
                             f"use at least {2 * world}")
        step.broadcast()
    end_epoch = cfg.epochs if stop_after_epoch is None else min(cfg.epochs, stop_after_epoch)
    for epoch in range(start_epoch, end_epoch + 1):
        t0 = time.perf_counter()
        trained = step.epoch(run.cache, run.labels, run.batches(epoch), f"finetune {epoch}/{cfg.epochs}", progress)
        if rank == 0:
            _score_epoch(run, record, step, epoch, trained, t0, progress)
    return _result(run, record, model) if rank == 0 else None


@dataclass(frozen=True)
class _Run:
    """One fine-tuning run's fixed parts: its settings and identity record, output folder, data and device."""

    cfg: FinetuneConfig
    config: dict[str, Any]  # what the resume check compares and history.json records
    out_dir: Path
    cache: Any
    labels: np.ndarray  # int64 [N,10]
    train_videos: np.ndarray
    val_pairs: np.ndarray  # avelib.train.pairs rows scored after every epoch
    device: torch.device

    @classmethod
    def of(cls, model: nn.Module, cache: Any, labels: np.ndarray, splits: Mapping[str, np.ndarray],
           cfg: FinetuneConfig, out_dir: Path, world: int) -> "_Run":
        """The run of `model`'s initial weights on these inputs (checked here); creates `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        train_videos, val_videos = _check_inputs(model, cache, labels, splits, cfg)
        device = resolve_device(cfg.device)
        config = {
            "finetune": resolved(cfg),
            "model": model_config(model),
            "initial_weights_sha256": weights_sha256(model),
            "data": data_fingerprint(cache, labels, np.asarray(splits["train"]), np.asarray(splits["val"])),
            "device": device.type,
            **({"ranks": world} if world > 1 else {}),
        }
        val_pairs = validation_pairs(val_videos, labels, int(cache.frames_per_second), cfg.val_frames,
                                     cfg.pairs == "clip")
        return cls(cfg, config, out_dir, cache, labels, train_videos, val_pairs, device)

    @property
    def clip(self) -> bool:
        return self.cfg.pairs == "clip"

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The training batches of `epoch` (seeded by it)."""
        cfg = self.cfg
        return sample_epoch_batches(self.train_videos, self.labels, int(self.cache.frames_per_second), cfg.batch_size,
                                    cfg.passes_per_epoch, cfg.max_pairs_per_epoch,
                                    np.random.default_rng([cfg.seed, 0, epoch]), self.clip)

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        return _evaluate(model, self.cache, self.val_pairs, self.cfg, self.device)


@dataclass
class _Record:
    """The scored epochs of a run (rank 0): their history and wall times, the best epoch's entry and weights."""

    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_entry: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = None

    @classmethod
    def resumed(cls, point: Mapping[str, Any], run: _Run, model: nn.Module) -> "_Record":
        """The record a resume point holds; the best epoch's weights from `best.pt`."""
        history = point["history"]
        best = max(history, key=lambda h: selection_key(h, run.cfg.recall_ks)) if history else None
        best_state = load_best_state(run.out_dir / BEST, model) if best is not None else None
        return cls(history, point["seconds"], best, best_state)

    def add(self, entry: dict[str, Any], model: nn.Module, run: _Run) -> None:
        """Add a scored epoch; a new best keeps its weights here and in `best.pt`."""
        self.history.append(entry)
        ks = run.cfg.recall_ks
        if self.best_entry is None or selection_key(entry, ks) > selection_key(self.best_entry, ks):
            self.best_entry, self.best_state = entry, cpu_state(model)
            save_best(model, run.out_dir, entry, run.config)


def _start(run: _Run, step: FinetuneStep, lead: bool) -> tuple[int, _Record]:
    """(first epoch to train, record so far): from the run's resume point, or a fresh start whose towers rank 0
    scores as epoch 0 when asked."""
    last = run.out_dir / LAST
    point = load_resume_point(last, comparable(run.config), "finetune")
    if point is not None:
        step.load_state_dict(point)
        log.info("finetune: resumed from %s after epoch %d", last, point["epoch"])
        print(f"finetune: resumed from {last} after epoch {point['epoch']} of {run.cfg.epochs}")
        return point["epoch"] + 1, _Record.resumed(point, run, step.model)
    _initialize(step.model, run.cfg)
    record = _Record()
    if run.cfg.eval_initial and lead:
        record.add({"epoch": 0, **run.evaluate(step.model)}, step.model, run)
    return 1, record


def _score_epoch(run: _Run, record: _Record, step: FinetuneStep, epoch: int, trained: dict[str, Any], t0: float,
                 progress: bool) -> None:
    """Rank 0 after training `epoch` (started at `t0`): validate, keep a new best, write the resume point and
    the outputs."""
    cfg = run.cfg
    entry = {"epoch": epoch, **trained, **run.evaluate(step.model)}
    record.add(entry, step.model, run)
    record.seconds.append(time.perf_counter() - t0)
    save_resume_point(run.out_dir / LAST, comparable(run.config), epoch=epoch, history=record.history,
                      seconds=record.seconds, **step.state_dict())
    write_outputs(run.out_dir, record.history, record.seconds, record.best_entry, run.config, cfg.recall_ks,
                  completed=epoch == cfg.epochs)
    if progress:
        tqdm.write(
            f"finetune epoch {epoch}: loss {entry['train_loss']:.4f}  val a2i R@1 {entry['a2i_r1']:.3f} "
            f"i2a R@1 {entry['i2a_r1']:.3f} (chance {entry['chance_r1']:.3f})"
        )


def _result(run: _Run, record: _Record, model: nn.Module) -> FinetuneResult:
    """Rank 0 at the end of the call: the outputs written once more, `model` holding the best epoch's weights."""
    history, best_entry = record.history, record.best_entry
    completed = bool(history) and history[-1]["epoch"] == run.cfg.epochs
    if best_entry is None:
        raise RuntimeError("finetune: no epoch was scored (epochs=0 and eval_initial=false)")
    write_outputs(run.out_dir, history, record.seconds, best_entry, run.config, run.cfg.recall_ks, completed=completed)
    if record.best_state is not None:
        model.load_state_dict(record.best_state)
    chance = {k: v for k, v in best_entry.items() if k.startswith("chance_")}
    return FinetuneResult(
        model=model, history=history, best_epoch=int(best_entry["epoch"]),
        best_metric=float(best_entry["a2i_r1"]), out_dir=run.out_dir, completed=completed, chance=chance,
    )


def finished_result(model: nn.Module, out_dir: str | Path) -> FinetuneResult:
    """The result of a run that torchrun ranks finished in `out_dir`: its history and, in `model`, its best weights."""
    out_dir = Path(out_dir)
    record = read_json(out_dir / HISTORY)
    if not record.get("completed"):
        raise RuntimeError(f"{out_dir / HISTORY}: the ranks ended before the last epoch")
    model.load_state_dict(load_best_state(out_dir / BEST, model))
    best = next(h for h in record["epochs"] if h["epoch"] == record["best_epoch"])
    return FinetuneResult(model=model, history=record["epochs"], best_epoch=int(record["best_epoch"]),
                          best_metric=float(best["a2i_r1"]), out_dir=out_dir, completed=True, chance=record["chance"])


def _check_inputs(model: nn.Module, cache: Any, labels: np.ndarray, splits: Mapping[str, np.ndarray],
                  cfg: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation videos with an event second (clip pairs: every video); raises on unusable inputs."""
    if 1 not in cfg.recall_ks:
        raise ValueError(f"finetune.recall_ks must contain 1 (selection is on R@1), got {cfg.recall_ks}")
    if labels.ndim != 2 or labels.shape[1] != NUM_SEGMENTS or labels.shape[0] != len(cache.ok):
        raise ValueError(f"labels must be [N,{NUM_SEGMENTS}] with N={len(cache.ok)} (cache rows), got {labels.shape}")
    videos = {}
    for split, name in (("train", "training"), ("val", "validation")):
        videos[split] = event_videos(labels, splits[split], cache.ok, cfg.pairs == "clip")
        if len(videos[split]) < 2:
            raise ValueError(f"finetune needs >= 2 decoded {name} videos with an event second, found {len(videos[split])}")
    check_cache_matches_model(cache, model)
    return videos["train"], videos["val"]


def _initialize(model: nn.Module, cfg: FinetuneConfig) -> None:
    """A fresh run: seed everything and set the logit scale when asked."""
    seed_everything(cfg.seed)
    if cfg.logit_scale_init is not None:
        if not 1.0 <= cfg.logit_scale_init <= 100.0:
            raise ValueError(f"finetune.logit_scale_init must be in [1, 100] (the clamp range), got {cfg.logit_scale_init}")
        with torch.no_grad():
            model.logit_scale_ai.fill_(math.log(cfg.logit_scale_init))


def _evaluate(model: nn.Module, cache: Any, pairs: np.ndarray, cfg: FinetuneConfig, device: torch.device) -> dict[str, float]:
    a, i = embed_pairs(model, cache, pairs, cfg.eval_batch_size, device, cfg.amp, cfg.channels_last)
    return {**retrieval_recall(a, i, cfg.recall_ks, groups=pairs[:, 0]), "val_pairs": int(len(pairs)),
            "val_videos": int(len(np.unique(pairs[:, 0])))}


def _label_tower(model: nn.Module, cfg: FinetuneConfig, device: torch.device, classes: int) -> LabelTower | None:
    """The table of `classes` class names when `label_weight` > 0 (its init seeded by `cfg.seed`), else None."""
    if cfg.label_weight < 0:
        raise ValueError(f"finetune.label_weight must be >= 0, got {cfg.label_weight}")
    if cfg.label_weight == 0:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        tower = LabelTower(classes, model.config.embed_dim)  # one name per event class (28 in AVE)
    return tower.to(device)
