"""Stage B: per-second AudioCLIP features of every video, from the memmapped segment cache.

For each video and second: `visual_mean.h5` = mean of the K frame embeddings of the second (AVE-CLIP's
mean video feature), `visual_single.h5` = the embedding of the middle frame (index K//2) only (the
one-frame ablation), `audio.h5` = the embedding of the 1-s audio. float32 [N,10,E], key `avadataset`,
rows in Annotations (cache) order. Videos the decode stage could not read (cache.ok false) get zeros and
are listed in `extract_report.json`. The embeddings are the towers' raw outputs (not L2-normalized).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from avelib.data.ave import NUM_SEGMENTS
from avelib.data.features import FEATURE_FILES, write_features
from avelib.io import read_json, resumable_dir, write_json
from avelib.models.device import autocast, prepare_model, resolve_device, to_images
from avelib.params import resolved
from avelib.train.checkpointing import weights_sha256

REPORT = "extract_report.json"
PROGRESS = "progress.json"  # in the partial dir: chunks whose features are flushed to the .npy memmaps


@dataclass(frozen=True)
class ExtractConfig:
    """params.yaml section `extract` (stage B)."""

    batch_size: int = 256
    """Images (frames) per forward pass of the image tower; audio clips per pass of the audio tower."""
    frames: Literal["all"] | int = "all"
    """Frames averaged per second: "all" = the K cached frames, or n = n of them, uniformly spaced."""
    num_workers: int = 0
    """DataLoader workers gathering batches from the memmapped cache (0 = in the main process)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """"auto" = CUDA when available, else CPU."""
    amp: bool = True
    """bf16 autocast on CUDA (the CPU runs plain fp32); outputs are stored as float32 either way."""
    channels_last: bool = True
    """channels_last conv kernels and image batches on CUDA."""


@dataclass
class ExtractResult:
    """Feature arrays float32 [N,10,E] as written, and the indices of the videos left at zero."""

    audio: np.ndarray
    visual_mean: np.ndarray
    visual_single: np.ndarray
    failed: list[int]
    out_dir: Path


def frame_indices(frames_per_second: int, frames: Literal["all"] | int) -> np.ndarray:
    """Indices of the cached frames that are averaged (uniformly spaced when a count is given)."""
    if frames == "all":
        return np.arange(frames_per_second)
    if not isinstance(frames, int) or not 1 <= frames <= frames_per_second:
        raise ValueError(f"extract.frames must be 'all' or 1..{frames_per_second} (cached frames), got {frames!r}")
    # centres of n equal parts of the K cached frames
    return np.unique(np.floor((np.arange(frames) + 0.5) * frames_per_second / frames).astype(np.int64))


class _SecondBatches(torch.utils.data.Dataset):
    """Chunks of (video, second) rows -> frames uint8 [b,F,S,S,3] (the encoded frame indices) and audio [b,R]."""

    def __init__(self, cache: Any, rows: np.ndarray, chunk: int, frame_idx: np.ndarray) -> None:
        self.frames = cache.frames  # memmap uint8 [N,10,K,S,S,3]
        self.audio = cache.audio  # memmap float32 [N,10,R]
        self.chunks = [rows[lo : lo + chunk] for lo in range(0, len(rows), chunk)]
        self.frame_idx = frame_idx

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        v, s = self.chunks[c].T
        if len(self.frame_idx) == self.frames.shape[2]:
            frames = self.frames[v, s]  # [b,K,S,S,3]: all frames, one contiguous read per second
        else:
            frames = self.frames[v[:, None], s[:, None], self.frame_idx[None, :]]  # [b,F,S,S,3]
        audio = np.asarray(self.audio[v, s], dtype=np.float32)  # [b,R]
        return torch.from_numpy(np.ascontiguousarray(frames)), torch.from_numpy(np.ascontiguousarray(audio))


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    cache: Any,
    cfg: ExtractConfig,
    out_dir: str | Path,
    progress: bool = True,
    extra_report: Mapping[str, Any] | None = None,
) -> ExtractResult:
    """Encode every second of every decoded video in `cache`; write the three h5 files into `out_dir`.

    The work happens in `<out_dir>.partial/` (avelib.io.resumable_dir): after every chunk the features
    are flushed to .npy memmaps and `progress.json` counts the chunk, so a killed run is continued by
    the next one with the same towers, cache and settings. `out_dir` appears whole or not at all.
    """
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    model = prepare_model(model, device, cfg.channels_last).eval()
    t0 = time.perf_counter()
    n = len(cache.ok)
    K = int(cache.frames_per_second)
    mean_idx = frame_indices(K, cfg.frames)  # frames averaged
    mid = K // 2  # the single frame
    encode_idx = np.union1d(mean_idx, [mid])  # frames actually encoded, sorted
    mean_pos = np.searchsorted(encode_idx, mean_idx)  # positions in encode_idx
    mid_pos = int(np.searchsorted(encode_idx, mid))
    ok = np.asarray(cache.ok, dtype=bool)
    failed = [int(i) for i in np.flatnonzero(~ok)]
    rows = np.array([(v, s) for v in np.flatnonzero(ok) for s in range(NUM_SEGMENTS)], dtype=np.int64).reshape(-1, 2)
    seconds_per_chunk = max(1, cfg.batch_size // len(encode_idx))  # image batch = chunk x F frames
    ds = _SecondBatches(cache, rows, seconds_per_chunk, encode_idx)
    if not len(rows):
        raise ValueError(f"extract: no decoded video in the cache (all {n} failed); nothing to encode")

    dims = {"mean": model.config.embed_dim, "single": model.config.embed_dim, "audio": model.config.embed_dim}
    record = {"extract": {k: v for k, v in resolved(cfg).items() if k != "num_workers"}, "device": device.type,
              "weights_sha256": weights_sha256(model), "cache_sha256": cache.fingerprint()}
    with resumable_dir(out_dir, record) as (tmp, resumed):
        out = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="r+" if resumed else "w+", dtype=np.float32,
                                               shape=(n, NUM_SEGMENTS, e)) for name, e in dims.items()}  # [N,10,E]
        done = read_json(tmp / PROGRESS)["chunks"] if resumed and (tmp / PROGRESS).is_file() else 0
        if resumed:
            print(f"extract: continuing {tmp} after {done} of {len(ds)} chunks")
        chunks = range(done, len(ds))
        loader = (
            torch.utils.data.DataLoader(torch.utils.data.Subset(ds, chunks), batch_size=None,
                                        num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
            if cfg.num_workers > 0 else (ds[c] for c in chunks)
        )
        lo = done * seconds_per_chunk
        bar = tqdm(loader, total=len(ds), initial=done, desc="extract", disable=None if progress else True)
        for c, (frames, audio) in zip(chunks, bar):
            b, f = frames.shape[:2]
            with autocast(device, cfg.amp):
                img = to_images(frames.reshape(b * f, *frames.shape[2:]), device, cfg.channels_last)  # [b*F,3,S,S]
                i_emb = model.encode_image(img).float().reshape(b, f, -1)  # [b,F,E]
                a_emb = model.encode_audio(audio.to(device, non_blocking=True)).float()  # [b,E]
            v, s = rows[lo : lo + b].T
            out["mean"][v, s] = i_emb[:, torch.as_tensor(mean_pos, device=i_emb.device)].mean(dim=1).cpu().numpy()
            out["single"][v, s] = i_emb[:, mid_pos].cpu().numpy()
            out["audio"][v, s] = a_emb.cpu().numpy()
            lo += b
            for arr in out.values():  # on disk before the progress file says so
                arr.flush()
            write_json({"chunks": c + 1}, tmp / PROGRESS)
        out_mean, out_single, out_audio = (np.array(out[k]) for k in ("mean", "single", "audio"))
        del out
        seconds = time.perf_counter() - t0
        video_ids = list(getattr(cache, "video_ids", [str(i) for i in range(n)]))
        failures = {f.get("file", ""): f.get("cause", "") for f in getattr(cache, "meta", {}).get("failures", [])}
        report = {
            "num_videos": n,
            "num_failed": len(failed),
            "failed": [{"index": i, "video_id": video_ids[i], "cause": _cause(video_ids[i], failures)} for i in failed],
            "embed_dim": {"audio": int(out_audio.shape[-1]), "visual": int(out_mean.shape[-1])},
            "frames_per_second_cached": K,
            "frames_averaged": [int(i) for i in mean_idx],
            "single_frame_index": mid,
            "seconds": seconds,
            "seconds_encoded_per_s": len(rows) / seconds if seconds > 0 else None,
            "params": {"extract": resolved(cfg), **dict(extra_report or {})},
        }
        write_features(tmp / FEATURE_FILES["mean"], out_mean)
        write_features(tmp / FEATURE_FILES["single"], out_single)
        write_features(tmp / FEATURE_FILES["audio"], out_audio)
        write_json(report, tmp / REPORT)
        for name in dims:
            (tmp / f"{name}.npy").unlink()
        (tmp / PROGRESS).unlink(missing_ok=True)
    return ExtractResult(audio=out_audio, visual_mean=out_mean, visual_single=out_single, failed=failed, out_dir=out_dir)


def _cause(video_id: str, failures: Mapping[str, str]) -> str:
    for file, cause in failures.items():
        if video_id and video_id in str(file):
            return cause
    return "decode failed (cache.ok is false)"
