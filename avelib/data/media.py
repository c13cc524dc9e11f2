"""Decode one video file (PyAV) into per-second frames and mono audio.

Second t holds K frames sampled at times t + (k + 0.5) / K (uniform in the second; the frame
on screen at that time), each converted to RGB at full resolution and then resized and
center-cropped to S x S exactly as CLIP's image transform does (`resize_crop`), and the audio of
[t, t+1) resampled to mono float32 at R Hz. Only the sampled frames are converted to RGB:
converting every decoded frame would dominate the cost on 25-60 fps video.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np
import torch

TRUNCATION_TOLERANCE_S = 0.5  # decoded end may fall this short of the declared duration


class DecodeError(RuntimeError):
    """A video that cannot be decoded; the message names the file and the cause."""


@dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 [T,K,S,S,3]
    audio: np.ndarray  # float32 [T,R]
    info: dict[str, Any] = field(default_factory=dict)


def _targets(k: int) -> Iterator[float]:
    """Sample times t + (j + 0.5) / K for t = 0, 1, 2, ... (seconds)."""
    j = 0
    while True:
        yield j // k + ((j % k) + 0.5) / k
        j += 1


_IN_FORKED_CHILD = False  # set after fork(): see _single_thread_if_forked


def _mark_forked_child() -> None:
    global _IN_FORKED_CHILD
    _IN_FORKED_CHILD = True


os.register_at_fork(after_in_child=_mark_forked_child)


def _single_thread_if_forked() -> None:
    """One torch thread in a forked decode worker: an OpenMP region there hangs when the parent had
    started OpenMP threads (they do not survive fork), and raising the count again hangs as well."""
    if _IN_FORKED_CHILD and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def resize_crop(image: np.ndarray | torch.Tensor, size: int) -> np.ndarray:
    """CLIP's resize and crop of one RGB uint8 image [H,W,3] -> uint8 [S,S,3]: torchvision's
    Resize(size, BICUBIC) (shorter side -> size, longer side truncated; antialiased like PIL) and
    CenterCrop(size). The one implementation of this rule: decoding and `preprocess_image` use it."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf  # lazy: importing torchvision takes seconds

    x = torch.as_tensor(image)
    if x.dtype != torch.uint8 or x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"resize_crop: expected uint8 [H, W, 3], got {x.dtype} {tuple(x.shape)}")
    _single_thread_if_forked()
    chw = x.permute(2, 0, 1)  # [3,H,W], channels-last in memory: torchvision's fast uint8 path
    chw = tvf.resize(chw, [size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    chw = tvf.center_crop(chw, [size, size])  # [3,S,S]
    return np.ascontiguousarray(chw.permute(1, 2, 0).numpy())


def frame_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as full-resolution RGB uint8 [H,W,3]; bicubic chroma upsampling, as decoding
    has always converted (a square S x S source gives the same bytes as before)."""
    return frame.to_ndarray(format="rgb24", interpolation="BICUBIC")


def _resize_crop(frame: av.VideoFrame, size: int) -> np.ndarray:
    """One sampled frame as tower-ready uint8 [S,S,3]."""
    return resize_crop(frame_rgb(frame), size)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DecodeError(f"{path}: file not found")
    if not path.is_file():
        raise DecodeError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: empty file (0 bytes)")


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise DecodeError(f"{path}: not a readable media file (truncated or not a video?): {e}") from None


def decode_video(
    path: str | Path,
    frames_per_second: int = 4,
    image_size: int = 64,
    sample_rate: int = 16000,
    seconds: int | None = 10,
) -> DecodedVideo:
    """Decode `path` into K frames and R audio samples per second.

    seconds=N pads (black frames, silence) or trims to exactly N seconds and records
    `padded_s` / `trimmed_s` in info; seconds=None returns T = ceil(duration) seconds.
    A file without audio gives silence and a warning in info["warnings"].
    """
    path = Path(path)
    k, s, r = frames_per_second, image_size, sample_rate
    if k < 1 or s < 1 or r < 1 or (seconds is not None and seconds < 1):
        raise ValueError(f"decode_video: bad arguments K={k}, S={s}, R={r}, seconds={seconds}")
    _check_file(path)
    container = _open(path)
    try:
        return _decode(container, path, k, s, r, seconds)
    except av.error.FFmpegError as e:
        raise DecodeError(f"{path}: decoding failed (corrupt or truncated stream): {e}") from None
    finally:
        container.close()


def _decode(container: av.container.InputContainer, path: Path, k: int, s: int, r: int, seconds: int | None) -> DecodedVideo:
    if not container.streams.video:
        raise DecodeError(f"{path}: no video stream")
    vs = container.streams.video[0]
    aus = container.streams.audio[0] if container.streams.audio else None
    warnings: list[str] = []
    declared = container.duration / 1e6 if container.duration else None  # seconds
    limit = float(seconds) if seconds is not None else math.inf
    v_start = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0
    fps = float(vs.average_rate) if vs.average_rate else None

    sampled: dict[int, np.ndarray] = {}  # target index -> [S,S,3]
    targets = _targets(k)
    j, t_next = 0, next(targets)
    prev: av.VideoFrame | None = None
    prev_rgb: np.ndarray | None = None
    n_frames, v_end = 0, 0.0

    resampler = av.AudioResampler(format="flt", layout="mono", rate=r) if aus is not None else None
    chunks: list[np.ndarray] = []
    n_audio = 0
    a_limit = (seconds * r) if seconds is not None else math.inf
    video_done = False
    audio_done = aus is None

    streams = [vs] + ([aus] if aus is not None else [])
    for packet in container.demux(*streams):
        if packet.stream is vs and not video_done:
            for frame in packet.decode():
                ft = (frame.time if frame.time is not None else n_frames / (fps or 25.0)) - v_start
                n_frames += 1
                dur = 1.0 / fps if fps else 0.04
                v_end = max(v_end, ft + dur)
                # targets before this frame show the previous frame (or this one at the very start)
                while t_next < ft and t_next < limit:
                    if prev_rgb is None:
                        prev_rgb = _resize_crop(prev if prev is not None else frame, s)
                    sampled[j] = prev_rgb
                    j, t_next = j + 1, next(targets)
                if prev is not frame:
                    prev, prev_rgb = frame, None
                if t_next >= limit:
                    video_done = True
                    break
        elif packet.stream is aus and not audio_done:
            assert resampler is not None
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))  # [n] mono float32
                    n_audio += chunks[-1].shape[0]
            if n_audio >= a_limit:
                audio_done = True
        if video_done and audio_done:
            break
    eof = not (video_done and audio_done)
    if resampler is not None and not audio_done:
        for out in resampler.resample(None):  # flush buffered samples
            chunks.append(out.to_ndarray().reshape(-1))
            n_audio += chunks[-1].shape[0]
    if n_frames == 0:
        raise DecodeError(f"{path}: no video frame could be decoded")

    a_end = n_audio / r
    decoded_end = max(v_end, a_end) if aus is not None else v_end
    if eof and declared is not None and decoded_end < min(declared, limit) - TRUNCATION_TOLERANCE_S:
        raise DecodeError(f"{path}: truncated: decoded {decoded_end:.2f} s of the declared {declared:.2f} s")
    duration = declared if declared is not None else decoded_end

    # frames still wanted at EOF: hold the last frame inside the last (partial) second, pad with black after
    covered = math.ceil(v_end - 1e-6)
    if seconds is None:
        n_sec = max(1, math.ceil(max(duration, v_end) - 1e-6))
    else:
        n_sec = seconds
    while j < n_sec * k:
        if j // k < covered and prev is not None:
            if prev_rgb is None:
                prev_rgb = _resize_crop(prev, s)
            sampled[j] = prev_rgb
        j += 1
    frames = np.zeros((n_sec * k, s, s, 3), dtype=np.uint8)  # [T*K,S,S,3]
    for idx, img in sampled.items():
        if idx < n_sec * k:
            frames[idx] = img
    frames = frames.reshape(n_sec, k, s, s, 3)  # [T,K,S,S,3]

    audio = np.zeros(n_sec * r, dtype=np.float32)  # [T*R]
    if aus is None:
        warnings.append("no audio track: audio is silence")
    elif chunks:
        wav = np.concatenate(chunks)[: n_sec * r]
        audio[: wav.shape[0]] = np.clip(wav, -1.0, 1.0)
    else:
        warnings.append("audio track has no decodable samples: audio is silence")
    audio = audio.reshape(n_sec, r)  # [T,R]

    info = {
        "duration": round(duration, 4),
        "fps": fps,
        "width": vs.codec_context.width,
        "height": vs.codec_context.height,
        "audio_channels": aus.codec_context.channels if aus is not None else 0,
        "audio_rate": aus.codec_context.sample_rate if aus is not None else 0,
        "audio_codec": aus.codec_context.name if aus is not None else None,
        "padded_s": round(max(0.0, n_sec - duration), 4),
        "trimmed_s": round(max(0.0, duration - n_sec), 4),
        "warnings": warnings,
    }
    return DecodedVideo(frames=frames, audio=audio, info=info)
