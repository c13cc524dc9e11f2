"""Cross-modality localization runs: zero-shot AudioCLIP cosine and the learned distance (AVDLN-like).

Training pairs of the learned distance are the (audio, visual) seconds of the training videos, the
same second of both modalities: matching where the second holds the event, non-matching on
background (AVEL's `labels_closs` target). The epoch is kept by validation accuracy, the mean of A2V
and V2A on the eligible validation videos (avelib.eval.crossmodal); ties keep the earliest epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from avelib.data.ave import BACKGROUND
from avelib.eval import crossmodal as X
from avelib.models.device import cpu_state
from avelib.models.distance import DistanceNet, contrastive_loss
from avelib.train.optim import adam
from avelib.train.seeding import seed_everything


@dataclass(frozen=True)
class CrossmodalConfig:
    """params.yaml section `crossmodal` (AVEL's AVDLN sizes, loss, epochs and optimiser; our batch)."""

    encoders: tuple[str, ...] = ("finetuned", "frozen")
    """Feature folders under the features root, each scored by every method."""
    hidden: int = 128
    """Hidden width of each embedding branch (AVDLN: 128)."""
    embed: int = 64
    """Output width of each branch (AVDLN: 64)."""
    margin: float = 2.0
    """Contrastive-loss margin (AVEL's training script: 2.0)."""
    epochs: int = 20
    """Epochs over the training seconds (AVEL: 20)."""
    batch_size: int = 64
    """Second pairs per step (AVEL: 8; docs/results.md "Each baseline trained as its authors train it" says why 64)."""
    lr: float = 1e-3
    """Adam learning rate (AVEL: Keras' Adam default, 1e-3)."""
    threads: int = 1
    """torch.set_num_threads while training (0 = torch's default)."""


def _second_pairs(audio: np.ndarray, visual: np.ndarray, labels: np.ndarray,
                  rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattened seconds of `rows`: audio [M,Da], visual [M,Dv], matching bool [M]."""
    a = torch.as_tensor(audio[rows].reshape(-1, audio.shape[-1]), dtype=torch.float32)
    v = torch.as_tensor(visual[rows].reshape(-1, visual.shape[-1]), dtype=torch.float32)
    return a, v, torch.as_tensor(labels[rows].reshape(-1) != BACKGROUND)


@torch.no_grad()
def learned_similarity(model: DistanceNet, audio: np.ndarray, visual: np.ndarray) -> np.ndarray:
    """[N,10,10] audio x visual similarity = minus the learned distance."""
    model.eval()
    d = model.pairwise(torch.as_tensor(audio, dtype=torch.float32), torch.as_tensor(visual, dtype=torch.float32))
    return -d.double().numpy()


def _val_accuracy(model: DistanceNet, audio: np.ndarray, visual: np.ndarray, starts: np.ndarray,
                  lengths: np.ndarray) -> float:
    correct = X.both_directions(learned_similarity(model, audio, visual), starts, lengths)
    return float(np.mean([correct["a2v"].mean(), correct["v2a"].mean()]))


def train_distance(audio: np.ndarray, visual: np.ndarray, labels: np.ndarray, splits: dict[str, Any],
                   cfg: CrossmodalConfig, seed: int, progress: bool = True) -> tuple[DistanceNet, list[dict[str, Any]]]:
    """A DistanceNet trained on the training seconds, with the weights of its best validation epoch."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    gen = seed_everything(seed)
    model = DistanceNet(audio.shape[-1], visual.shape[-1], cfg.hidden, cfg.embed)
    a, v, match = _second_pairs(audio, visual, labels, np.asarray(splits["train"]))
    va = np.asarray(splits["val"])
    starts, lengths = X.event_spans(labels[va])
    keep = X.eligible(lengths)
    val = (audio[va][keep], visual[va][keep], starts[keep], lengths[keep])
    if not keep.any():
        print(f"distance seed {seed}: no validation video has a 1-9 s event; the last epoch is kept")
    opt = adam(model, cfg.lr)
    history: list[dict[str, Any]] = []
    best, best_state = -1.0, cpu_state(model)
    for epoch in tqdm(range(cfg.epochs), desc=f"distance seed {seed}", disable=None if progress else True):
        model.train()
        perm = torch.randperm(len(match), generator=gen)
        losses = []
        for lo in range(0, len(perm), cfg.batch_size):
            idx = perm[lo : lo + cfg.batch_size]
            loss = contrastive_loss(model(a[idx], v[idx]), match[idx], cfg.margin)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        acc = _val_accuracy(model, *val) if keep.any() else None
        history.append({"epoch": epoch, "train_loss": float(torch.stack(losses).double().mean()), "val_accuracy": acc})
        if acc is None or acc > best:
            best, best_state = acc, cpu_state(model)
    model.load_state_dict(best_state)
    return model, history


def crossmodal_runs(audio: np.ndarray, visual: np.ndarray, labels: np.ndarray, splits: dict[str, Any],
                    cfg: CrossmodalConfig, seeds: tuple[int, ...], progress: bool = True) -> dict[str, Any]:
    """A2V and V2A on the eligible test videos of one feature set (ours, or the classic VGG19/VGGish route).

    Returns {videos, lengths, chance, zero_shot (None when the two modalities' embeddings differ in
    size, e.g. VGG19 512 vs VGGish 128: they share no space), learned (over `seeds`), example}
    (videos 0 and every method None when no test video has a 1-9 s event); each
    method holds per direction the X.summarize_direction dict. `example` is the first eligible
    video's A2V similarity map of the zero-shot method (else the learned one, first seed).
    """
    te = np.asarray(splits["test"])
    starts, lengths = X.event_spans(labels[te])
    keep = X.eligible(lengths)
    if not keep.any():  # e.g. a smoke-sized split: the task is not defined there, and the files say so
        print("crossmodal: no test video has an event of 1-9 s; nothing to score")
        return {"videos": 0, "test_rows": [], "lengths": [], "chance": None, "zero_shot": None, "learned": None}
    a, v, s, n = audio[te][keep], visual[te][keep], starts[keep], lengths[keep]
    zero_sim = X.cosine_similarity(a, v) if a.shape[-1] == v.shape[-1] else None  # [M,10,10]
    learned, first_sim = [], None
    for seed in seeds:
        model, _ = train_distance(audio, visual, labels, splits, cfg, seed, progress)
        sim = learned_similarity(model, a, v)  # [M,10,10]
        first_sim = sim if first_sim is None else first_sim
        learned.append(X.both_directions(sim, s, n))
    out: dict[str, Any] = {"videos": int(keep.sum()), "test_rows": te[keep].tolist(), "lengths": n.tolist(),
                           "chance": X.chance_summary(n), "zero_shot": None,
                           "learned": {d: X.summarize_direction([r[d] for r in learned]) for d in ("a2v", "v2a")}}
    if zero_sim is not None:
        zero = X.both_directions(zero_sim, s, n)
        out["zero_shot"] = {d: X.summarize_direction([zero[d]]) for d in ("a2v", "v2a")}
    example = zero_sim if zero_sim is not None else first_sim
    if example is not None and len(s):
        out["example"] = {"row": int(te[keep][0]), "start": int(s[0]), "length": int(n[0]),
                          "method": "zero_shot" if zero_sim is not None else "learned",
                          "predicted_start": int(X.predicted_starts(example[:1], s[:1], n[:1])[0]),
                          "similarity": np.round(example[0], 5).tolist()}
    return out
