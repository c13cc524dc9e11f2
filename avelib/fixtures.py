"""Stand-ins of the paper setting's real inputs, made by code (never committed as binaries).

- `write_ave_zip`: an `AVE_Dataset.zip` in the release layout (`AVE_Dataset/AVE/<id>.mp4`,
  `Annotations.txt` with its header line, header-less split files, `ReadMe.txt`) whose videos are
  SynthAVE content encoded the way YouTube-derived AVE files are: 24-30 fps (NTSC 29.97 included),
  non-square frames, 44.1 and 48 kHz AAC, mono and stereo, one clip shorter than 10 s, one video id
  serving two samples (AVE reuses 46 ids).
- `write_release_features`: the AVE release's feature folder (`visual_feature.h5` [N,10,7,7,512] and
  `audio_feature.h5` [N,10,128] float64, `labels.h5` [N,10,29], `labels_closs.h5` [N,10], `mil_labels.h5`
  [N,29] float32 under `avadataset`; `{train,val,test}_order.h5` int64 0-based rows under `order`) holding
  learnable stand-in features (avelib.data.features.synthetic_features) at any size.
- `write_standin_checkpoint`: a full-size `AudioCLIP-Full-Training.pt` with every key and shape of
  `shared/conformance/audioclip/keys.tsv`, values by that folder's stand-in rule, saved as the
  release file is (a plain state_dict), so it loads through `AudioCLIP.from_checkpoint`.

CLI: `python -m avelib fixtures paper --out DIR`, `python -m avelib fixtures release --out DIR`.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from avelib.data.ave import BACKGROUND, CATEGORIES, HEADER, NUM_CLASSES, NUM_SEGMENTS, SPLIT_FILES, Record
from avelib.data.synth import SynthConfig, assign_labels_and_splits, plan_video, write_video
from avelib.data.synth_render import render_audio, render_frames
from avelib.io import atomic_path
from avelib.models.esresnext import blackman_harris
from avelib.runtime import pool_context

ZIP_FOLDER = "AVE_Dataset"
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SHORT_CLIP_S = 9.6  # one clip ends early, as some AVE downloads do
FIXTURE_CRF = 30  # small files; the content is simple
README_TEXT = "Stand-in of the AVE release made by avelib.fixtures (SynthAVE content, AVE layout).\n"


@dataclass(frozen=True)
class VideoFormat:
    """How one stand-in file is encoded."""

    fps: int | Fraction
    width: int
    height: int
    sample_rate: int
    channels: int


# cycled over the videos: every combination real AVE files show
FORMATS: tuple[VideoFormat, ...] = (
    VideoFormat(30, 640, 360, 44100, 2),
    VideoFormat(25, 480, 360, 48000, 1),
    VideoFormat(Fraction(30000, 1001), 640, 360, 48000, 2),
    VideoFormat(24, 480, 360, 44100, 1),
)


def youtube_like_ids(n: int, seed: int) -> list[str]:
    """n distinct 11-character ids over YouTube's alphabet; the first starts with '-' (as e.g. -5TQ0P3cRvk)."""
    rng = np.random.default_rng([seed, 11])
    ids: list[str] = []
    while len(ids) < n:
        chars = "".join(ID_ALPHABET[i] for i in rng.integers(0, len(ID_ALPHABET), size=11))
        chars = "-" + chars[1:] if not ids else chars
        if chars not in ids:
            ids.append(chars)
    return ids


def _render(cfg: SynthConfig, fmt: VideoFormat, index: int, label: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """SynthAVE frames [N,S,S,3] at the format's rate and audio [C,n], cut to `seconds`."""
    video_cfg = replace(cfg, fps=round(float(fmt.fps)), sample_rate=fmt.sample_rate)
    plan = plan_video(video_cfg, index, label)
    frames = render_frames(video_cfg, plan, index)[: math.floor(seconds * float(fmt.fps))]
    mono = render_audio(video_cfg, plan, index)[: round(seconds * fmt.sample_rate)]
    audio = np.stack([mono, 0.8 * mono]) if fmt.channels == 2 else mono[None]  # [C,n]
    return frames, audio


def _encode_one(args: tuple[SynthConfig, int, int, str, str]) -> str:
    """Render and encode stand-in video `index` into `folder`; returns the file path."""
    cfg, index, label, video_id, folder = args
    fmt = FORMATS[index % len(FORMATS)]
    seconds = SHORT_CLIP_S if index == 1 else float(NUM_SEGMENTS)
    frames, audio = _render(cfg, fmt, index, label, seconds)
    path = Path(folder) / f"{video_id}.mp4"
    write_video(path, frames, audio, fmt.fps, fmt.sample_rate, FIXTURE_CRF, size=(fmt.width, fmt.height), preset="ultrafast")
    return str(path)


def _records(cfg: SynthConfig, labels: list[int], ids: list[str]) -> list[Record]:
    """One record per video, then a sample reusing the first id with another category (as AVE does)."""
    out = []
    for i, (label, vid) in enumerate(zip(labels, ids)):
        plan = plan_video(cfg, i, label)
        out.append(Record(CATEGORIES[label], vid, "good", plan["start"], plan["end"]))
    out.append(Record(CATEGORIES[(labels[0] + 1) % len(CATEGORIES)], ids[0], "good", 0, NUM_SEGMENTS))
    return out


def _plan(num_videos: int, seed: int) -> tuple[SynthConfig, list[int], dict[str, list[int]], list[str]]:
    """(SynthAVE settings, labels, splits, video ids) of `num_videos` stand-in videos."""
    if num_videos < len(FORMATS):
        raise ValueError(f"stand-in AVE: num_videos={num_videos}; at least {len(FORMATS)} (one of each format)")
    cfg = SynthConfig(num_videos=num_videos, split_fractions=(0.5, 0.25, 0.25), image_size=96, seed=seed)
    labels, splits = assign_labels_and_splits(cfg)
    return cfg, labels, splits, youtube_like_ids(num_videos, seed)


def iter_standin_videos(folder: str | Path, num_videos: int = 12, seed: int = 0, workers: int = 2,
                        progress: bool = True) -> Iterator[Path]:
    """Encode the stand-in videos into `folder` (`<id>.mp4`), yielding each path in order as it is written."""
    cfg, labels, _, ids = _plan(num_videos, seed)
    jobs = [(cfg, i, labels[i], ids[i], str(folder)) for i in range(num_videos)]
    bar = dict(total=num_videos, desc="stand-in AVE", unit="video", disable=None if progress else True)
    with pool_context().Pool(workers) as pool:
        for path in tqdm(pool.imap(_encode_one, jobs), **bar):
            yield Path(path)


def write_ave_zip(out: str | Path, num_videos: int = 12, seed: int = 0, workers: int = 2, progress: bool = True) -> Path:
    """Write a stand-in AVE_Dataset.zip holding `num_videos` videos (+1 sample reusing an id, in train)."""
    cfg, labels, splits, ids = _plan(num_videos, seed)
    records = _records(cfg, labels, ids)
    split_rows = {**splits, "train": [*splits["train"], num_videos]}
    text = {"Annotations.txt": "\n".join([HEADER, *(r.line() for r in records)]) + "\n", "ReadMe.txt": README_TEXT}
    text |= {fname: "".join(records[i].line() + "\n" for i in split_rows[name]) for name, fname in SPLIT_FILES.items()}
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for path in iter_standin_videos(tmp.parent, num_videos, seed, workers, progress):
            zf.write(path, f"{ZIP_FOLDER}/AVE/{path.name}", compress_type=zipfile.ZIP_STORED)
            path.unlink()
        for fname, body in text.items():
            zf.writestr(f"{ZIP_FOLDER}/{fname}", body, compress_type=zipfile.ZIP_DEFLATED)
    return Path(out)


def read_keys(path: str | Path) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) rows of a conformance keys.tsv."""
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines or lines[0].split("\t") != ["key", "shape", "dtype"]:
        raise ValueError(f"{path}: not a keys.tsv (expected the header 'key<TAB>shape<TAB>dtype')")
    rows = []
    for line in lines[1:]:
        key, shape, dtype = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        rows.append((key, dims, dtype))
    return rows


def standin_value(key: str, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """The conformance README's rule: the first that matches wins, drawn in float64, then cast."""
    last = key.rsplit(".", 1)[-1]
    tdtype = getattr(torch, dtype)
    if dtype == "int64":
        return torch.zeros(shape, dtype=tdtype)
    if key.endswith("audio.window"):
        return blackman_harris(shape[0]).to(tdtype)
    n = np.random.default_rng(zlib.crc32(key.encode("utf-8"))).standard_normal(size=shape)
    if last == "running_var":
        v = 0.5 + 0.5 * np.abs(n)
    elif last == "running_mean":
        v = 0.1 * n
    elif key.endswith("fbsp.m"):
        v = 0.5 + 0.1 * n
    elif key.endswith("fbsp.fb"):
        v = 1.0 + 0.1 * n
    elif key.endswith("fbsp.fc"):
        v = np.arange(shape[0]) + 0.1 * n
    elif last in ("logit_scale", "logit_scale_ai", "logit_scale_at"):
        v = np.full(shape, math.log(100.0))
    elif len(shape) >= 2:
        v = n / math.sqrt(float(np.prod(shape[1:])))
    elif len(shape) == 1 and last == "weight":
        v = 1.0 + 0.1 * n
    else:
        v = 0.1 * n
    return torch.from_numpy(np.asarray(v, dtype=np.float64)).to(tdtype)


def standin_state(keys_tsv: str | Path) -> dict[str, torch.Tensor]:
    """The whole stand-in state_dict (~540 MB in float32 for the full model)."""
    return {key: standin_value(key, shape, dtype) for key, shape, dtype in read_keys(keys_tsv)}


def write_standin_checkpoint(keys_tsv: str | Path, out: str | Path) -> Path:
    """torch.save the stand-in state_dict to `out`, atomically, as the release file is saved."""
    state = standin_state(keys_tsv)
    with atomic_path(out) as tmp:
        torch.save(state, tmp)
    return Path(out)


def write_release_features(out_dir: str | Path, num_videos: int = 60, seed: int = 0) -> Path:
    """A stand-in of the release's `data/` folder in `out_dir` (layout in the module docstring)."""
    import h5py

    from avelib.data.features import KEY, ORDER_KEY, synthetic_features

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    audio, visual, labels, splits = synthetic_features(num_videos, audio_dim=128, visual_dim=512, seed=seed)
    noise = rng.normal(scale=0.1, size=(num_videos, NUM_SEGMENTS, 7, 7, 512))  # [N,10,7,7,512]
    regions = visual[:, :, None, None, :] + noise - noise.mean(axis=(2, 3), keepdims=True)  # 7x7 mean = visual
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]  # [N,10,29]
    first = [row[row < BACKGROUND][0] if (row < BACKGROUND).any() else rng.integers(BACKGROUND) for row in labels]
    arrays = {"visual_feature.h5": regions.astype(np.float64), "audio_feature.h5": audio.astype(np.float64),
              "labels.h5": onehot, "labels_closs.h5": (labels < BACKGROUND).astype(np.float32),
              "mil_labels.h5": np.eye(NUM_CLASSES, dtype=np.float32)[first]}  # the video's category
    for name, array in arrays.items():
        with h5py.File(out_dir / name, "w") as f:
            f.create_dataset(KEY, data=array)
    for split, rows in splits.items():
        with h5py.File(out_dir / f"{split}_order.h5", "w") as f:
            f.create_dataset(ORDER_KEY, data=rng.permutation(rows).astype(np.int64))  # unsorted, as in the release
    return out_dir


def write_paper_fixtures(out_dir: str | Path, keys_tsv: str | Path, num_videos: int = 12, seed: int = 0) -> dict[str, Path]:
    """Both stand-ins in `out_dir`: AVE_Dataset.zip and AudioCLIP-Full-Training.pt."""
    out_dir = Path(out_dir)
    return {
        "zip": write_ave_zip(out_dir / "AVE_Dataset.zip", num_videos, seed),
        "checkpoint": write_standin_checkpoint(keys_tsv, out_dir / "AudioCLIP-Full-Training.pt"),
    }
