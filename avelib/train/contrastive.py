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

Outputs in `out_dir`: `last.pt` (resume point after each finished epoch), `best.pt` (via
`avelib.models.audioclip.save_checkpoint`, loadable with `AudioCLIP.from_checkpoint`), `history.json`
and the DVC plot files `plots/finetune_loss.csv`, `plots/finetune_recall.csv`.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from avelib.data.ave import BACKGROUND, NUM_SEGMENTS
from avelib.io import atomic_path, write_json
from avelib.models.label_tower import LabelTower
from avelib.params import resolved, section
from avelib.train.seeding import seed_everything

log = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"
HISTORY = "history.json"
LOSS_CSV = "plots/finetune_loss.csv"
RECALL_CSV = "plots/finetune_recall.csv"

# keys of the resolved config that do not change the numbers, so they may differ on resume
_RESUME_INDIFFERENT = ("num_workers",)


@dataclass(frozen=True)
class FinetuneConfig:
    """params.yaml section `finetune` (stage A). All values are design defaults of ours."""

    epochs: int = 4
    """Number of passes of the schedule (each epoch = `passes_per_epoch` shuffles of the training videos)."""
    batch_size: int = 32
    """Pairs per step, at most one second per video (larger = more negatives)."""
    passes_per_epoch: int = 1
    """How many shuffled passes over the training videos make one epoch (each pass draws a new second/frame)."""
    max_pairs_per_epoch: int | None = None
    """Cap on the pairs of one epoch (for speed on the full dataset); null = no cap."""
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
    """channels_last memory format for the towers' conv kernels and image batches on CUDA."""
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


# ----------------------------------------------------------------------------------------------------
# pair sampling


def event_videos(labels: np.ndarray, indices: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Indices (subset of `indices`) of decoded videos with at least one event second."""
    indices = np.asarray(indices, dtype=np.int64)
    has_event = (np.asarray(labels)[indices] != BACKGROUND).any(axis=1)  # [n]
    return indices[has_event & np.asarray(ok, dtype=bool)[indices]]


def sample_epoch_batches(
    videos: np.ndarray,
    labels: np.ndarray,
    frames_per_second: int,
    batch_size: int,
    passes: int,
    max_pairs: int | None,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """One epoch of batches, each int64 [B,3] rows (video, second, frame), videos distinct in a batch.

    Each pass shuffles the videos and cuts the permutation into batches, so a video appears at most
    once per batch; its event second and frame are drawn anew for every appearance. A trailing batch
    of fewer than 2 pairs is dropped (a contrastive batch needs negatives).
    """
    batches: list[np.ndarray] = []
    total = 0
    for _ in range(passes):
        order = rng.permutation(videos)  # [n]
        for lo in range(0, len(order), batch_size):
            vids = order[lo : lo + batch_size]
            if max_pairs is not None:
                vids = vids[: max(0, max_pairs - total)]
            if len(vids) < 2:
                break
            rows = np.empty((len(vids), 3), dtype=np.int64)  # [B,3]
            for j, v in enumerate(vids):
                seconds = np.flatnonzero(labels[v] != BACKGROUND)
                rows[j] = (v, seconds[rng.integers(len(seconds))], rng.integers(frames_per_second))
            batches.append(rows)
            total += len(vids)
    return batches


def validation_pairs(videos: np.ndarray, labels: np.ndarray, frames_per_second: int, frames: int) -> np.ndarray:
    """Every event second of every validation video, `frames` evenly spaced frames each: int64 [M,3]
    rows (video, second, frame). Hundreds of pairs, so R@1 resolves well below a point."""
    picks = sorted({(2 * j + 1) * frames_per_second // (2 * frames) for j in range(min(frames, frames_per_second))})
    rows = [(v, s, f) for v in videos for s in np.flatnonzero(labels[v] != BACKGROUND) for f in picks]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class _PairBatches(torch.utils.data.Dataset):
    """Gathers whole batches (frames uint8 [B,S,S,3], audio float32 [B,R]) from the memmapped cache."""

    def __init__(self, cache: Any, batches: list[np.ndarray]) -> None:
        self.frames = cache.frames  # memmap uint8 [N,10,K,S,S,3]
        self.audio = cache.audio  # memmap float32 [N,10,R]
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        v, s, f = self.batches[b].T
        frames = np.ascontiguousarray(self.frames[v, s, f])  # [B,S,S,3] uint8, reads only these frames
        audio = np.ascontiguousarray(self.audio[v, s], dtype=np.float32)  # [B,R]
        return torch.from_numpy(frames), torch.from_numpy(audio)


def iterate_pairs(
    cache: Any, batches: list[np.ndarray], num_workers: int, pin_memory: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(frames uint8 [B,S,S,3], audio [B,R]) for each batch, in order."""
    ds = _PairBatches(cache, batches)
    if num_workers == 0:
        for b in range(len(ds)):
            yield ds[b]
        return
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, shuffle=False, num_workers=num_workers, pin_memory=pin_memory,
        persistent_workers=False,
    )
    yield from loader


# ----------------------------------------------------------------------------------------------------
# model plumbing


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available else cpu; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(name)


def autocast(device: torch.device, amp: bool) -> Any:
    """bf16 autocast on CUDA when `amp`, a no-op context elsewhere (the CPU runs plain fp32)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move to `device`; channels_last conv kernels on CUDA (both towers are conv nets)."""
    model = model.to(device)
    if channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def to_images(frames_u8: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 [B,S,S,3] -> normalized float [B,3,S,S] on `device` (CLIP mean/std)."""
    from avelib.models.audioclip import normalize_frames

    x = normalize_frames(frames_u8.to(device, non_blocking=True))  # [B,3,S,S]
    if channels_last and device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def check_cache_matches_model(cache: Any, model: nn.Module) -> None:
    """The cache must hold frames and audio at the model's input size and sample rate."""
    config = getattr(model, "config", None)
    if config is None:
        return
    where = f"{getattr(cache, 'dir', 'segment cache')}"
    if getattr(config, "image_size", cache.image_size) != cache.image_size:
        raise ValueError(
            f"{where}: cache image_size {cache.image_size} != model image_size {config.image_size}; "
            "rebuild the cache (decode stage) with the model's size"
        )
    if getattr(config, "sample_rate", cache.sample_rate) != cache.sample_rate:
        raise ValueError(
            f"{where}: cache sample_rate {cache.sample_rate} != model sample_rate {config.sample_rate}"
        )


def contrastive_loss(model: nn.Module, a_emb: torch.Tensor, i_emb: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy of the audio-image logits, diagonal = positives: CE(audio->image) +
    CE(image->audio), a sum as in the official AudioCLIP objective (so `fbsp_weight` = 1 matches it)."""
    logits = model.audio_image_logits(a_emb, i_emb).float()  # [B,B] rows audio, cols image (fp32 CE)
    target = torch.arange(logits.shape[0], device=logits.device)  # [B]
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay weight matrices / conv kernels only; biases, norms and scalar scales are not decayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(total_steps: int, warmup_fraction: float, min_lr_ratio: float):
    """Linear warm-up then cosine decay, as a multiplier of the peak lr for `LambdaLR`."""
    warmup = int(round(warmup_fraction * total_steps))

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn


# ----------------------------------------------------------------------------------------------------
# validation


@torch.inference_mode()
def embed_pairs(
    model: nn.Module,
    cache: Any,
    pairs: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp: bool = True,
    channels_last: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio and image embeddings (float32, CPU) [M,E] of the (video, second, frame) rows of `pairs`."""
    was_training = model.training
    model.eval()
    a_out, i_out = [], []
    batches = [pairs[lo : lo + batch_size] for lo in range(0, len(pairs), batch_size)]
    for frames, audio in iterate_pairs(cache, batches, 0, False):
        with autocast(device, amp):
            i_out.append(model.encode_image(to_images(frames, device, channels_last)).float().cpu())  # [b,E]
            a_out.append(model.encode_audio(audio.to(device)).float().cpu())  # [b,E]
    model.train(was_training)
    return torch.cat(a_out), torch.cat(i_out)


def retrieval_recall(
    a_emb: torch.Tensor, i_emb: torch.Tensor, ks: tuple[int, ...], groups: np.ndarray | None = None
) -> dict[str, Any]:
    """Recall@k both ways: `a2i_r{k}`, `i2a_r{k}`, chance level `chance_r{k}` and `a2i_r1_ci`.

    Row m of both embeddings is one pair; `groups[m]` names its video (default: every row its own).
    A query hits at k when a candidate of its own group is among its top k. The rank counts the
    other groups' candidates with an equal or higher cosine similarity than the best own-group one
    (ties count against the query, so collapsed embeddings score chance-or-worse, never 1.0).
    `a2i_r1_ci`: 95 % bootstrap interval of a2i R@1 over groups (videos); `a2i_r1_per_video`: each
    group's a2i R@1 (groups in sorted order), for paired comparisons of two epochs.
    """
    m = a_emb.shape[0]
    g = torch.as_tensor(np.arange(m) if groups is None else np.asarray(groups))  # [M]
    same = g[:, None] == g[None, :]  # [M,M]
    sim = F.normalize(a_emb.float(), dim=-1) @ F.normalize(i_emb.float(), dim=-1).T  # [M,M] rows audio, cols image
    rank_a2i = _group_rank(sim, same)  # [M]
    rank_i2a = _group_rank(sim.T, same.T)  # [M]
    own = same.sum(dim=1).double()  # [M] own-group candidates per query
    out: dict[str, Any] = {}
    for k in ks:
        out[f"a2i_r{k}"] = float((rank_a2i < k).float().mean())
        out[f"i2a_r{k}"] = float((rank_i2a < k).float().mean())
        out[f"chance_r{k}"] = float(_chance_at(own, m, k).mean())
    hits = (rank_a2i < 1).numpy()  # [M]
    out["a2i_r1_ci"] = _grouped_ci(hits, g.numpy())
    _, video = np.unique(g.numpy(), return_inverse=True)
    out["a2i_r1_per_video"] = (np.bincount(video, weights=hits) / np.bincount(video)).tolist()  # [G], sorted ids
    return out


def _group_rank(sim: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Per query row: other-group candidates scoring >= the best own-group candidate."""
    best_own = sim.masked_fill(~same, -torch.inf).max(dim=1).values  # [M]
    return ((sim >= best_own[:, None]) & ~same).sum(dim=1)


def _chance_at(own: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """P(a random ranking puts one of `own` of `m` candidates in the top k), per query."""
    miss = torch.ones_like(own)
    for j in range(min(k, m)):
        miss = miss * ((m - own - j).clamp(min=0) / (m - j))
    return 1.0 - miss


def _grouped_ci(hits: np.ndarray, groups: np.ndarray, confidence: float = 0.95) -> list[float]:
    """Bootstrap interval of the hit rate, resampling whole groups (queries of a video are not independent)."""
    from scipy.stats import bootstrap

    _, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=hits.astype(np.float64))  # [G]
    counts = np.bincount(inverse).astype(np.float64)  # [G]
    if len(sums) < 2:
        rate = float(sums.sum() / counts.sum())
        return [rate, rate]
    res = bootstrap((sums, counts), lambda s, c: s.sum() / c.sum(), paired=True, vectorized=False,
                    confidence_level=confidence, n_resamples=2000, method="percentile",
                    random_state=np.random.default_rng(0))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


# ----------------------------------------------------------------------------------------------------
# checkpoint / history files


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(),
        "python": _python_state_bytes(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _numpy_state() -> dict[str, Any]:
    # the legacy global numpy state, as tensors/ints so that weights_only loading accepts it
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _python_state_bytes() -> list[Any]:
    version, state, gauss = random.getstate()
    return [version, list(state), gauss]


def _restore_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    ns = states["numpy"]
    np.random.set_state((ns["name"], ns["keys"].numpy().astype(np.uint32), ns["pos"], ns["has_gauss"], ns["cached"]))
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config without the keys that do not change the numbers."""
    fin = {k: v for k, v in config["finetune"].items() if k not in _RESUME_INDIFFERENT}
    return {**config, "finetune": fin}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)


def write_plots(out_dir: Path, history: list[dict[str, Any]], ks: tuple[int, ...]) -> None:
    """DVC plot files: per-epoch train losses and validation recalls (columns start with `epoch`)."""
    loss_cols = ["train_loss", "train_contrastive", "train_fbsp", "lr"]
    if any("train_label" in h for h in history):
        loss_cols.insert(3, "train_label")
    rows = [[h["epoch"]] + [h[c] for c in loss_cols] for h in history if h["epoch"] > 0]
    _write_csv(out_dir / LOSS_CSV, ["epoch"] + loss_cols, rows)
    rec_cols = [f"{d}_r{k}" for d in ("a2i", "i2a") for k in ks] + [f"chance_r{k}" for k in ks]
    rows = [[h["epoch"]] + [h[c] for c in rec_cols] + list(h["a2i_r1_ci"]) for h in history]
    _write_csv(out_dir / RECALL_CSV, ["epoch"] + rec_cols + ["a2i_r1_ci_low", "a2i_r1_ci_high"], rows)


def _data_fingerprint(cache: Any, labels: np.ndarray, train: np.ndarray, val: np.ndarray) -> dict[str, Any]:
    h = hashlib.sha256()
    for arr in (np.asarray(labels, dtype=np.int64), train, val, np.asarray(cache.ok, dtype=bool)):
        h.update(np.ascontiguousarray(arr).tobytes())
    return {
        "num_videos": int(len(labels)),
        "frames_per_second": int(cache.frames_per_second),
        "image_size": int(cache.image_size),
        "sample_rate": int(cache.sample_rate),
        "labels_splits_sha256": h.hexdigest(),
        "cache_sha256": cache.fingerprint(),
    }


def _weights_sha256(model: nn.Module) -> str:
    """Fingerprint of the starting weights, so a resume never continues from other initial towers."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def _model_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    return resolved(config) if config is not None else type(model).__name__


def _selection_key(entry: Mapping[str, Any], ks: tuple[int, ...]) -> tuple[float, ...]:
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
) -> FinetuneResult:
    """Contrastively fine-tune both towers of `model` on `cache`; see the module docstring.

    labels: int64 [N,10] segment labels (28 = background) in cache row order; splits: "train", "val"
    index arrays. Resumes from `out_dir/last.pt` when its resolved config matches. `stop_after_epoch`
    ends this call after that epoch (as an interruption would), leaving a resumable `last.pt`.
    """
    from avelib.models.audioclip import save_checkpoint

    if 1 not in cfg.recall_ks:
        raise ValueError(f"finetune.recall_ks must contain 1 (selection is on R@1), got {cfg.recall_ks}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != NUM_SEGMENTS or labels.shape[0] != len(cache.ok):
        raise ValueError(f"labels must be [N,{NUM_SEGMENTS}] with N={len(cache.ok)} (cache rows), got {labels.shape}")
    K = int(cache.frames_per_second)
    train_videos = event_videos(labels, splits["train"], cache.ok)
    val_videos = event_videos(labels, splits["val"], cache.ok)
    if len(train_videos) < 2:
        raise ValueError(f"finetune needs >= 2 decoded training videos with an event second, found {len(train_videos)}")
    if len(val_videos) < 2:
        raise ValueError(f"finetune needs >= 2 decoded validation videos with an event second, found {len(val_videos)}")
    check_cache_matches_model(cache, model)

    device = resolve_device(cfg.device)
    config = {
        "finetune": resolved(cfg),
        "model": _model_config(model),
        "initial_weights_sha256": _weights_sha256(model),
        "data": _data_fingerprint(cache, labels, np.asarray(splits["train"]), np.asarray(splits["val"])),
        "device": device.type,
    }
    val_pairs = validation_pairs(val_videos, labels, K, cfg.val_frames)
    batches_per_epoch = len(
        sample_epoch_batches(train_videos, labels, K, cfg.batch_size, cfg.passes_per_epoch,
                             cfg.max_pairs_per_epoch, np.random.default_rng([cfg.seed, 0, 0]))
    )
    if batches_per_epoch == 0:
        raise ValueError("finetune: no batch of >= 2 pairs per epoch; raise batch_size or max_pairs_per_epoch")
    total_steps = cfg.epochs * batches_per_epoch

    model = prepare_model(model, device, cfg.channels_last)
    for p in model.parameters():
        p.requires_grad_(True)  # both towers are trained
    label_tower = _label_tower(model, cfg, device)
    groups = param_groups(model, cfg.weight_decay)
    if label_tower is not None:
        groups.append({"params": list(label_tower.parameters()), "weight_decay": 0.0})
    trainable = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, cfg.warmup_fraction, cfg.min_lr_ratio)
    )

    history: list[dict[str, Any]] = []
    seconds: list[float] = []
    start_epoch = 1
    best_state: dict[str, torch.Tensor] | None = None
    best_entry: dict[str, Any] | None = None
    resumed = _try_resume(out_dir, config, model, optimizer, scheduler, label_tower)
    if resumed is not None:
        start_epoch = resumed["epoch"] + 1
        history = resumed["history"]
        seconds = resumed.get("seconds", [])
        best_entry = max(history, key=lambda h: _selection_key(h, cfg.recall_ks)) if history else None
        if best_entry is not None:
            best_state = _load_best_state(out_dir / BEST, model)
        log.info("finetune: resumed from %s after epoch %d", out_dir / LAST, resumed["epoch"])
    else:
        seed_everything(cfg.seed)
        if cfg.logit_scale_init is not None:
            if not 1.0 <= cfg.logit_scale_init <= 100.0:
                raise ValueError(f"finetune.logit_scale_init must be in [1, 100] (the clamp range), got {cfg.logit_scale_init}")
            with torch.no_grad():
                model.logit_scale_ai.fill_(math.log(cfg.logit_scale_init))
        if cfg.eval_initial:
            entry = {"epoch": 0, **_evaluate(model, cache, val_pairs, cfg, device)}
            history.append(entry)
            best_entry, best_state = entry, cpu_state(model)
            _save_best(save_checkpoint, model, out_dir, entry, config)

    end_epoch = cfg.epochs if stop_after_epoch is None else min(cfg.epochs, stop_after_epoch)
    pin = device.type == "cuda"
    for epoch in range(start_epoch, end_epoch + 1):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, 0, epoch])  # per-epoch stream: resume needs no numpy state
        batches = sample_epoch_batches(train_videos, labels, K, cfg.batch_size, cfg.passes_per_epoch,
                                       cfg.max_pairs_per_epoch, rng)
        model.train()
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # pair-weighted loss, contrastive, fbsp, label
        n_pairs = 0
        bar = tqdm(iterate_pairs(cache, batches, cfg.num_workers, pin), total=len(batches),
                   desc=f"finetune {epoch}/{cfg.epochs}", disable=None if progress else True, leave=False)
        for rows, (frames, audio) in zip(batches, bar):
            images = to_images(frames, device, cfg.channels_last)  # [B,3,S,S]
            audio = audio.to(device, non_blocking=True)  # [B,R]
            with autocast(device, cfg.amp):
                a_emb = model.encode_audio(audio)  # [B,E]
                i_emb = model.encode_image(images)  # [B,E]
                con = contrastive_loss(model, a_emb, i_emb)
                fbsp = model.fbsp_loss().float()
                lab = torch.zeros((), device=device)
                if label_tower is not None:
                    classes = torch.from_numpy(labels[rows[:, 0], rows[:, 1]]).to(device)  # [B] event classes
                    lab = label_tower.loss(a_emb, i_emb, classes)
                loss = con + cfg.fbsp_weight * fbsp + cfg.label_weight * lab
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            b = len(frames)
            n_pairs += b
            sums += torch.stack([loss.detach(), con.detach(), fbsp.detach(), lab.detach()]).double() * b  # no host sync per step
        bar.close()
        loss_sum, con_sum, fbsp_sum, label_sum = sums.tolist()
        entry = {
            "epoch": epoch,
            "train_loss": loss_sum / n_pairs,
            "train_contrastive": con_sum / n_pairs,
            "train_fbsp": fbsp_sum / n_pairs,
            **({"train_label": label_sum / n_pairs} if label_tower is not None else {}),
            "train_pairs": n_pairs,
            "lr": float(scheduler.get_last_lr()[0]),
            "logit_scale": float(model.logit_scale_ai.detach().exp().clamp(1, 100)),
            **_evaluate(model, cache, val_pairs, cfg, device),
        }
        history.append(entry)
        if best_entry is None or _selection_key(entry, cfg.recall_ks) > _selection_key(best_entry, cfg.recall_ks):
            best_entry, best_state = entry, cpu_state(model)
            _save_best(save_checkpoint, model, out_dir, entry, config)
        seconds.append(time.perf_counter() - t0)
        _save_last(out_dir, model, optimizer, scheduler, epoch, history, seconds, config, label_tower)
        _write_outputs(out_dir, history, seconds, best_entry, config, cfg, completed=epoch == cfg.epochs)
        if progress:
            tqdm.write(
                f"finetune epoch {epoch}: loss {entry['train_loss']:.4f}  val a2i R@1 {entry['a2i_r1']:.3f} "
                f"i2a R@1 {entry['i2a_r1']:.3f} (chance {entry['chance_r1']:.3f})"
            )

    completed = bool(history) and history[-1]["epoch"] == cfg.epochs
    if best_entry is None:
        raise RuntimeError("finetune: no epoch was scored (epochs=0 and eval_initial=false)")
    _write_outputs(out_dir, history, seconds, best_entry, config, cfg, completed=completed)
    if best_state is not None:
        model.load_state_dict(best_state)
    chance = {k: v for k, v in best_entry.items() if k.startswith("chance_")}
    return FinetuneResult(
        model=model, history=history, best_epoch=int(best_entry["epoch"]),
        best_metric=float(best_entry["a2i_r1"]), out_dir=out_dir, completed=completed, chance=chance,
    )


def _evaluate(model: nn.Module, cache: Any, pairs: np.ndarray, cfg: FinetuneConfig, device: torch.device) -> dict[str, float]:
    a, i = embed_pairs(model, cache, pairs, cfg.eval_batch_size, device, cfg.amp, cfg.channels_last)
    return {**retrieval_recall(a, i, cfg.recall_ks, groups=pairs[:, 0]), "val_pairs": int(len(pairs)),
            "val_videos": int(len(np.unique(pairs[:, 0])))}


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights (checkpoints load anywhere, whatever the training device)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _save_best(save_checkpoint: Any, model: nn.Module, out_dir: Path, entry: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    # save_checkpoint writes atomically; extra = what was kept and why, with the resolved params
    save_checkpoint(model, out_dir / BEST, {"epoch": int(entry["epoch"]), "val": dict(entry), "params": dict(config)})


def _load_best_state(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: best checkpoint missing although {path.parent / LAST} exists; delete {path.parent} to restart")
    loaded = type(model).from_checkpoint(path, config=getattr(model, "config", None))
    return {k: v.detach().to("cpu", copy=True) for k, v in loaded.state_dict().items()}


def _label_tower(model: nn.Module, cfg: FinetuneConfig, device: torch.device) -> LabelTower | None:
    """The class-name table when `label_weight` > 0 (its init seeded by `cfg.seed`), else None."""
    if cfg.label_weight < 0:
        raise ValueError(f"finetune.label_weight must be >= 0, got {cfg.label_weight}")
    if cfg.label_weight == 0:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        tower = LabelTower(BACKGROUND, model.config.embed_dim)  # one name per event class (28 in AVE)
    return tower.to(device)


def _save_last(out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               epoch: int, history: list[dict[str, Any]], seconds: list[float], config: Mapping[str, Any],
               label_tower: LabelTower | None = None) -> None:
    state = {
        "model": model.state_dict(),
        "label_tower": label_tower.state_dict() if label_tower is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "rng": _rng_states(),
        "history": copy.deepcopy(history),
        "seconds": list(seconds),
        "config": dict(config),
    }
    with atomic_path(out_dir / LAST) as tmp:
        torch.save(state, tmp)


def _try_resume(out_dir: Path, config: Mapping[str, Any], model: nn.Module,
                optimizer: torch.optim.Optimizer, scheduler: Any, label_tower: LabelTower | None = None) -> dict[str, Any] | None:
    """Load `last.pt` into model/optimizer/scheduler/RNGs when its config matches, else None."""
    path = out_dir / LAST
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state.get("config")
    if not isinstance(saved, dict) or "finetune" not in saved or _comparable(saved) != _comparable(config):
        log.warning("finetune: %s was made with other settings; starting fresh", path)
        print(f"finetune: {path} was made with other settings (config differs); starting fresh")
        return None
    model.load_state_dict(state["model"])
    if label_tower is not None:
        label_tower.load_state_dict(state["label_tower"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _restore_rng_states(state["rng"])
    return state


def _write_outputs(out_dir: Path, history: list[dict[str, Any]], seconds: list[float], best: Mapping[str, Any],
                   config: Mapping[str, Any], cfg: FinetuneConfig, completed: bool) -> None:
    write_plots(out_dir, history, cfg.recall_ks)
    write_json(
        {
            "epochs": history,
            "best_epoch": int(best["epoch"]),
            "best_val_a2i_r1": float(best["a2i_r1"]),
            "chance": {k: v for k, v in best.items() if k.startswith("chance_")},
            "completed": completed,
            "seconds_per_epoch": seconds,
            "params": dict(config),
        },
        out_dir / HISTORY,
    )


def stage_summary(history: Mapping[str, Any]) -> dict[str, Any]:
    """`reports/finetune.json` from a `history.json`: the kept epoch vs the start (epoch 0) on validation
    audio->image R@1, each with its CI, and their paired difference over validation videos (video-weighted)."""
    from avelib.eval.stats import paired_difference

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


def _r1(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"a2i_r1": entry["a2i_r1"], "a2i_r1_ci": entry.get("a2i_r1_ci"), "chance_r1": entry.get("chance_r1")}


# ----------------------------------------------------------------------------------------------------
# stage entry points (notebooks / dvc)


def audioclip_params(params: Mapping[str, Any]) -> Any:
    """The `audioclip` section of params.yaml (TOWERS' `AudioCLIPParams`)."""
    from avelib.models.audioclip import AudioCLIPParams

    return section(params, "audioclip", AudioCLIPParams)


def initial_model(params: Mapping[str, Any]) -> nn.Module:
    """The towers fine-tuning starts from: the pretrained checkpoint(s) of the `audioclip` section, or
    (none given) a random init seeded with `finetune.seed`, so `frozen` features use the same weights."""
    from avelib.models.audioclip import build_from_params

    cfg = section(params, "finetune", FinetuneConfig)
    seed_everything(cfg.seed)
    return build_from_params(audioclip_params(params))


def run_finetune(params: Mapping[str, Any], cache_dir: str | Path, dataset_root: str | Path,
                 out_dir: str | Path, progress: bool = True) -> FinetuneResult:
    """Stage A from params: load labels/splits and the cache, build the initial towers, fine-tune."""
    from avelib.data.ave import load_dataset
    from avelib.data.cache import SegmentCache

    cfg = section(params, "finetune", FinetuneConfig)
    dataset = load_dataset(dataset_root)
    cache = SegmentCache.open(cache_dir)
    ids = [r.video_id for r in dataset.records]
    if list(cache.video_ids) != ids:
        raise ValueError(f"{cache_dir}: cache video_ids do not match {dataset_root}/Annotations.txt order; rerun decode")
    model = initial_model(params)
    return finetune(model, cache, dataset.labels, dataset.splits, cfg, out_dir, progress=progress)
