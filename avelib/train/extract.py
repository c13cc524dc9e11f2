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
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from avelib.data.ave import NUM_SEGMENTS
from avelib.data.features import FEATURE_FILES, write_features
from avelib.io import atomic_path, resumable_dir, write_json
from avelib.models.device import autocast, prepare_model, resolve_device
from avelib.models.images import to_images
from avelib.params import resolved
from avelib.train.checkpointing import weights_sha256

REPORT = "extract_report.json"
DONE = "chunks_done.npy"  # in the partial dir: uint8 [chunks], 1 once a chunk's features are flushed
OUTPUTS = ("mean", "single", "audio")  # the .npy memmaps of the partial dir


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
    """channels_last conv kernels and image batches (faster with oneDNN on the CPU and with cuDNN)."""


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


@dataclass(frozen=True)
class _Plan:
    """What is encoded, in which chunks: the same in the stage process and in every rank."""

    rows: np.ndarray  # int64 [M,2]: (video, second) of every decoded second
    seconds_per_chunk: int
    encode_idx: np.ndarray  # cached frames actually encoded, sorted
    mean_pos: np.ndarray  # positions in encode_idx of the averaged frames
    mid_pos: int  # position in encode_idx of the single (middle) frame
    chunks: int

    @classmethod
    def of(cls, cache: Any, cfg: ExtractConfig) -> "_Plan":
        K = int(cache.frames_per_second)
        mean_idx = frame_indices(K, cfg.frames)
        encode_idx = np.union1d(mean_idx, [K // 2])
        ok = np.flatnonzero(np.asarray(cache.ok, dtype=bool))
        rows = np.array([(v, s) for v in ok for s in range(NUM_SEGMENTS)], dtype=np.int64).reshape(-1, 2)
        per_chunk = max(1, cfg.batch_size // len(encode_idx))  # image batch = chunk x F frames
        return cls(rows, per_chunk, encode_idx, np.searchsorted(encode_idx, mean_idx),
                   int(np.searchsorted(encode_idx, K // 2)), -(-len(rows) // per_chunk))


def _outputs(tmp: Path, n: int, embed_dim: int, mode: str) -> dict[str, np.ndarray]:
    """The feature memmaps float32 [N,10,E] of the partial dir ('w+' creates them, 'r+' opens them)."""
    return {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode=mode, dtype=np.float32,
                                            shape=(n, NUM_SEGMENTS, embed_dim)) for name in OUTPUTS}


def _mark_done(done: np.ndarray, chunk: int) -> None:
    done[chunk] = 1
    done.flush()


@torch.inference_mode()
def encode_chunks(model: nn.Module, cache: Any, cfg: ExtractConfig, tmp: str | Path,
                  owns_next: Callable[[], bool] | None = None, progress: bool = True) -> int:
    """Encode the chunks not yet marked in `tmp/DONE`; the count encoded. `owns_next` (one process's share,
    avelib.distributed) is asked once per chunk, in order, whether this process encodes it (all without it).

    Each chunk's features are flushed to the memmaps before its mark, so a kill loses at most the
    chunk in flight; processes write disjoint rows of the same files."""
    tmp = Path(tmp)
    device = resolve_device(cfg.device)
    model = prepare_model(model, device, cfg.channels_last).eval()
    plan = _Plan.of(cache, cfg)
    out = _outputs(tmp, len(cache.ok), model.config.embed_dim, "r+")
    done = np.load(tmp / DONE, mmap_mode="r+")  # uint8 [chunks]
    chunks = [c for c in range(plan.chunks) if (owns_next is None or owns_next()) and not done[c]]
    ds = _SecondBatches(cache, plan.rows, plan.seconds_per_chunk, plan.encode_idx)
    loader = (
        torch.utils.data.DataLoader(torch.utils.data.Subset(ds, chunks), batch_size=None,
                                    num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
        if cfg.num_workers > 0 else (ds[c] for c in chunks)
    )
    mean_pos = torch.as_tensor(plan.mean_pos, device=device)
    for c, (frames, audio) in zip(chunks, tqdm(loader, total=len(chunks), desc="extract",
                                               disable=None if progress else True)):
        b, f = frames.shape[:2]
        with autocast(device, cfg.amp):
            img = to_images(frames.reshape(b * f, *frames.shape[2:]), device, cfg.channels_last)  # [b*F,3,S,S]
            i_emb = model.encode_image(img).float().reshape(b, f, -1)  # [b,F,E]
            a_emb = model.encode_audio(audio.to(device, non_blocking=True)).float()  # [b,E]
        v, s = plan.rows[c * plan.seconds_per_chunk : c * plan.seconds_per_chunk + b].T
        out["mean"][v, s] = i_emb[:, mean_pos].mean(dim=1).cpu().numpy()
        out["single"][v, s] = i_emb[:, plan.mid_pos].cpu().numpy()
        out["audio"][v, s] = a_emb.cpu().numpy()
        for arr in out.values():  # on disk before the chunk is marked done
            arr.flush()
        _mark_done(done, c)
    return len(chunks)


def extract_features(
    model: nn.Module,
    cache: Any,
    cfg: ExtractConfig,
    out_dir: str | Path,
    progress: bool = True,
    extra_report: Mapping[str, Any] | None = None,
    ranks: Callable[[Path], None] | None = None,
) -> ExtractResult:
    """Encode every second of every decoded video in `cache`; write the three h5 files into `out_dir`.

    The work happens in `<out_dir>.partial/` (avelib.io.resumable_dir): the features go to .npy
    memmaps and `DONE` marks each chunk once flushed, so a killed run is continued by the next one
    with the same towers, cache and settings. `ranks(tmp)`, when given, has more processes encode
    their shares into `tmp` (avelib.stages.towers); else this process encodes every chunk. The h5
    files are assembled here, and `out_dir` appears whole or not at all.
    """
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    n = len(cache.ok)
    plan = _Plan.of(cache, cfg)
    failed = [int(i) for i in np.flatnonzero(~np.asarray(cache.ok, dtype=bool))]
    if not len(plan.rows):
        raise ValueError(f"extract: no decoded video in the cache (all {n} failed); nothing to encode")
    record = {"extract": {k: v for k, v in resolved(cfg).items() if k != "num_workers"},
              "device": resolve_device(cfg.device).type, "weights_sha256": weights_sha256(model),
              "cache_sha256": cache.fingerprint()}
    with resumable_dir(out_dir, record) as (tmp, resumed):
        if resumed and (tmp / DONE).is_file():
            print(f"extract: continuing {tmp} after {int(np.load(tmp / DONE).sum())} of {plan.chunks} chunks")
        else:
            _outputs(tmp, n, model.config.embed_dim, "w+")
            with atomic_path(tmp / DONE) as path:
                np.save(path, np.zeros(plan.chunks, dtype=np.uint8))
        if ranks is not None:
            ranks(tmp)
        else:
            encode_chunks(model, cache, cfg, tmp, progress=progress)
        missing = int((np.load(tmp / DONE) == 0).sum())
        if missing:
            raise RuntimeError(f"extract: {missing} of {plan.chunks} chunks were not encoded in {tmp}")
        out = _outputs(tmp, n, model.config.embed_dim, "r")
        out_mean, out_single, out_audio = (np.array(out[k]) for k in ("mean", "single", "audio"))
        del out
        seconds = time.perf_counter() - t0  # printed, not written: a wall time would change the folder's DVC hash
        print(f"extract: {len(plan.rows)} seconds of video encoded in {seconds:.1f} s")
        K = int(cache.frames_per_second)
        video_ids = list(getattr(cache, "video_ids", [str(i) for i in range(n)]))
        failures = {f.get("file", ""): f.get("cause", "") for f in getattr(cache, "meta", {}).get("failures", [])}
        report = {
            "num_videos": n,
            "num_failed": len(failed),
            "failed": [{"index": i, "video_id": video_ids[i], "cause": _cause(video_ids[i], failures)} for i in failed],
            "embed_dim": {"audio": int(out_audio.shape[-1]), "visual": int(out_mean.shape[-1])},
            "frames_per_second_cached": K,
            "frames_averaged": [int(i) for i in frame_indices(K, cfg.frames)],
            "single_frame_index": K // 2,
            "params": {"extract": resolved(cfg), **dict(extra_report or {})},
        }
        write_features(tmp / FEATURE_FILES["mean"], out_mean)
        write_features(tmp / FEATURE_FILES["single"], out_single)
        write_features(tmp / FEATURE_FILES["audio"], out_audio)
        write_json(report, tmp / REPORT)
        for name in OUTPUTS:
            (tmp / f"{name}.npy").unlink()
        (tmp / DONE).unlink()
    return ExtractResult(audio=out_audio, visual_mean=out_mean, visual_single=out_single, failed=failed, out_dir=out_dir)


def _cause(video_id: str, failures: Mapping[str, str]) -> str:
    for file, cause in failures.items():
        if video_id and video_id in str(file):
            return cause
    return "decode failed (cache.ok is false)"
