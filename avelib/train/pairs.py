"""(audio second, frame) pairs of the segment cache: sampling for training, every event second for
validation, batch gathering from the memmapped cache and the embedding pass of the towers.

A pair is a row (video, audio second, frame second, frame). Stage A pairs an event second's audio with
one of its own frames (aligned); pretraining on the pool pairs an audio second with a frame of any second
of the clip (`clip`: AudioSet's labels are per clip, avelib.data.pool), where every second counts."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from avelib.data.ave import BACKGROUND, NUM_SEGMENTS
from avelib.models.device import autocast
from avelib.models.images import to_images


def event_videos(labels: np.ndarray, indices: np.ndarray, ok: np.ndarray, clip: bool = False) -> np.ndarray:
    """Indices (subset of `indices`) of decoded videos with at least one event second (clip pairs: every
    decoded video)."""
    indices = np.asarray(indices, dtype=np.int64)
    has_event = (np.asarray(labels)[indices] != BACKGROUND).any(axis=1) | clip  # [n]
    return indices[has_event & np.asarray(ok, dtype=bool)[indices]]


def pair_seconds(labels: np.ndarray, video: int, clip: bool) -> np.ndarray:
    """The seconds of `video` that pairs are drawn from: its event seconds, or all of them (clip pairs)."""
    return np.arange(NUM_SEGMENTS) if clip else np.flatnonzero(labels[video] != BACKGROUND)


def sample_epoch_batches(
    videos: np.ndarray,
    labels: np.ndarray,
    frames_per_second: int,
    batch_size: int,
    passes: int,
    max_pairs: int | None,
    rng: np.random.Generator,
    clip: bool = False,
) -> list[np.ndarray]:
    """One epoch of batches, each int64 [B,4] rows (video, audio second, frame second, frame), videos
    distinct in a batch.

    Each pass shuffles the videos and cuts the permutation into batches, so a video appears at most
    once per batch; its event second (both columns) and frame are drawn anew for every appearance; with
    `clip`, an audio second and, independently, a frame second of the whole clip. A trailing batch of
    fewer than 2 pairs is dropped (a contrastive batch needs negatives).
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
            rows = np.empty((len(vids), 4), dtype=np.int64)  # [B,4]
            for j, v in enumerate(vids):
                seconds = pair_seconds(labels, v, clip)
                audio_second = seconds[rng.integers(len(seconds))]
                frame_second = seconds[rng.integers(len(seconds))] if clip else audio_second
                rows[j] = (v, audio_second, frame_second, rng.integers(frames_per_second))
            batches.append(rows)
            total += len(vids)
    return batches


def validation_pairs(videos: np.ndarray, labels: np.ndarray, frames_per_second: int, frames: int,
                     clip: bool = False) -> np.ndarray:
    """Every event second (clip pairs: every second) of every validation video with `frames` evenly spaced
    frames of its own: int64 [M,4] rows (video, second, second, frame). Hundreds of pairs, so R@1 resolves
    well below a point; retrieval counts any pair of the query's video as a hit, so clip-level pairs need
    no other rows."""
    picks = sorted({(2 * j + 1) * frames_per_second // (2 * frames) for j in range(min(frames, frames_per_second))})
    rows = [(v, s, s, f) for v in videos for s in pair_seconds(labels, v, clip) for f in picks]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


class _PairBatches(torch.utils.data.Dataset):
    """Gathers whole batches (frames uint8 [B,S,S,3], audio float32 [B,R]) from the memmapped cache."""

    def __init__(self, cache: Any, batches: list[np.ndarray]) -> None:
        self.frames = cache.frames  # memmap uint8 [N,10,K,S,S,3]
        self.audio = cache.audio  # memmap float32 [N,10,R]
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        v, audio_second, frame_second, f = self.batches[b].T
        frames = np.ascontiguousarray(self.frames[v, frame_second, f])  # [B,S,S,3] uint8, reads only these frames
        audio = np.ascontiguousarray(self.audio[v, audio_second], dtype=np.float32)  # [B,R]
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
    """Audio and image embeddings (float32, CPU) [M,E] of the (video, audio second, frame second, frame)
    rows of `pairs`. Each second's audio is encoded once, however many frames the rows pair it with."""
    was_training = model.training
    model.eval()
    seconds, where = np.unique(pairs[:, :2], axis=0, return_inverse=True)  # [U,2], [M]
    audio_rows = np.column_stack([seconds, seconds[:, 1], np.zeros(len(seconds), dtype=seconds.dtype)])  # [U,4]
    with autocast(device, amp):
        a_emb = torch.cat([model.encode_audio(audio.to(device)).float().cpu()
                           for _, audio in _in_batches(cache, audio_rows, batch_size)])  # [U,E]
        i_emb = torch.cat([model.encode_image(to_images(frames, device, channels_last)).float().cpu()
                           for frames, _ in _in_batches(cache, pairs, batch_size)])  # [M,E]
    model.train(was_training)
    return a_emb[torch.from_numpy(where.reshape(-1))], i_emb  # [M,E] each


def _in_batches(cache: Any, rows: np.ndarray, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(frames, audio) of `rows`, `batch_size` rows at a time."""
    return iterate_pairs(cache, [rows[lo : lo + batch_size] for lo in range(0, len(rows), batch_size)], 0, False)
