"""Per-second feature files: our extract-stage output and the classic AVE release.

Our layout: `<dir>/audio.h5`, `<dir>/visual_mean.h5`, `<dir>/visual_single.h5`, each a
float32 [N,10,E] array under the h5 key `avadataset`, rows in Annotations order.

The classic AVE release ships `visual_feature.h5` [N,10,7,7,512] float64 (VGG19 pool5), `audio_feature.h5`
[N,10,128] (VGGish) and `labels.h5` [N,10,29] one-hot, all under `avadataset`, plus `*_order.h5` split
files under `order`. The visual file is 7.7 GB: it is read in chunks of videos and converted to float32
as it goes, never loaded whole in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import h5py
import numpy as np

from avelib.data.ave import NUM_CLASSES, NUM_SEGMENTS
from avelib.io import atomic_path
from avelib.params import value

KEY = "avadataset"  # h5 dataset key of every AVE feature/label file
ORDER_KEY = "order"  # h5 dataset key of the classic *_order.h5 split files
FEATURE_FILES = {"audio": "audio.h5", "mean": "visual_mean.h5", "single": "visual_single.h5"}
TOWER_RUNS_DIR = "tower_runs"  # <features root>/tower_runs/run<k>/<encoder>: tower runs 1.. (avelib.stages.tower_runs)


class FeatureFileError(ValueError):
    """A feature file that is missing, lacks the expected key or has the wrong shape."""


def tower_feature_dirs(features_root: str | Path, encoder: str, count: int = 1) -> list[Path]:
    """The `encoder` folder of tower runs 0 .. count - 1: run 0's `<features_root>/<encoder>`, then run k's
    `<features_root>/tower_runs/run<k>/<encoder>` (the tower_runs stage of the tower-run study). The count comes
    from params (`tower_run_count`), never from what happens to be on disk, so a stage reads what DVC tracks."""
    root = Path(features_root)
    folders = [root / encoder] + [root / TOWER_RUNS_DIR / f"run{k}" / encoder for k in range(1, count)]
    missing = [str(f) for f in folders[1:] if not f.is_dir()]
    if missing:
        raise FeatureFileError(f"tower run features missing: {', '.join(missing)}; run `make confirm` (tower_runs stage)")
    return folders


def tower_run_count(params: Mapping[str, Any]) -> int:
    """`tower_runs.count` in the tower-run study's stages; 1 in the quick study's, which get no `tower_runs`
    section at all (their table entries list none of its keys) and read run 0 only."""
    return value(params, "tower_runs.count", int) if "tower_runs" in params else 1


def study_encoders(encoders: tuple[str, ...], params: Mapping[str, Any], main: str) -> tuple[str, ...]:
    """The feature folders of `encoders` that a stage trains on: every one in the tower-run study; in the quick study
    only the `main` run's. Other towers' runs serve comparisons between tower sets, which one tower run cannot
    resolve: the tower-run study trains them, run 0's included."""
    return tuple(encoders) if tower_run_count(params) > 1 else tuple(e for e in encoders if e == main)


def write_features(path: str | Path, array: np.ndarray) -> None:
    """Write a [N,10,E] array as float32 under key `avadataset`, atomically."""
    arr = np.asarray(array)
    if arr.ndim != 3 or arr.shape[1] != NUM_SEGMENTS:
        raise FeatureFileError(f"{path}: expected a [N,{NUM_SEGMENTS},E] array, got shape {arr.shape}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            # no object timestamps: the same features give the same bytes (and DVC hash)
            f.create_dataset(KEY, data=arr.astype(np.float32, copy=False), track_times=False)


def _open_dataset(f: h5py.File, path: Path, key: str) -> h5py.Dataset:
    if key not in f:
        raise FeatureFileError(f"{path}: no dataset '{key}' (keys present: {sorted(f.keys())})")
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise FeatureFileError(f"{path}: '{key}' is a group, not a dataset")
    return ds


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file not found (has the extract stage run?)")


def read_features(path: str | Path) -> np.ndarray:
    """Read a [N,10,E] float32 feature array written by `write_features`."""
    path = Path(path)
    _require_file(path)
    with h5py.File(path, "r") as f:
        ds = _open_dataset(f, path, KEY)
        if ds.ndim != 3 or ds.shape[1] != NUM_SEGMENTS:
            raise FeatureFileError(
                f"{path}: '{KEY}' has shape {ds.shape}; expected rank 3 [N,{NUM_SEGMENTS},E]"
            )
        return np.asarray(ds[...], dtype=np.float32)  # [N,10,E]


def load_feature_set(
    directory: str | Path, visual: Literal["mean", "single"] = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """audio [N,10,Da], visual [N,10,Dv] from one `data/features/<encoder>/` folder."""
    if visual not in ("mean", "single"):
        raise ValueError(f"visual must be 'mean' or 'single', got {visual!r}")
    directory = Path(directory)
    audio = read_features(directory / FEATURE_FILES["audio"])  # [N,10,Da]
    vis = read_features(directory / FEATURE_FILES[visual])  # [N,10,Dv]
    if audio.shape[0] != vis.shape[0]:
        raise FeatureFileError(
            f"{directory}: {FEATURE_FILES['audio']} has {audio.shape[0]} rows but "
            f"{FEATURE_FILES[visual]} has {vis.shape[0]}"
        )
    return audio, vis


@dataclass(frozen=True)
class ClassicFeatures:
    """The original AVE release features, as float32.

    audio: [N,10,128] VGGish; visual: [N,10,512] VGG19 pool5 averaged over the 7x7 map;
    labels: int64 [N,10] (0..28, 28 = background); regions: [N,10,49,512] (the 7x7 map, row-major)
    only when asked for (the AVEL baseline attends over it), else None.
    """

    audio: np.ndarray
    visual: np.ndarray
    labels: np.ndarray
    regions: np.ndarray | None = None


def _read_visual_chunked(
    path: Path, chunk: int, keep_regions: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Spatially pooled [N,10,512] (and optionally [N,10,49,512]) float32, read `chunk` videos at a time."""
    _require_file(path)
    with h5py.File(path, "r") as f:
        ds = _open_dataset(f, path, KEY)
        if ds.ndim != 5 or ds.shape[1] != NUM_SEGMENTS:
            raise FeatureFileError(f"{path}: '{KEY}' has shape {ds.shape}; expected [N,10,7,7,512]")
        n, t, h, w, c = ds.shape
        pooled = np.empty((n, t, c), dtype=np.float32)  # [N,10,C]
        regions = np.empty((n, t, h * w, c), dtype=np.float32) if keep_regions else None  # [N,10,HW,C]
        for lo in range(0, n, chunk):
            block = ds[lo : lo + chunk]  # [b,10,H,W,C] float64: only this chunk is in float64
            pooled[lo : lo + chunk] = block.mean(axis=(2, 3), dtype=np.float64).astype(np.float32)
            if regions is not None:
                regions[lo : lo + chunk] = block.reshape(block.shape[0], t, h * w, c)  # cast on assign
        return pooled, regions


def read_array(path: Path, ndim: int, what: str, width: int = NUM_SEGMENTS) -> np.ndarray:
    _require_file(path)
    with h5py.File(path, "r") as f:
        ds = _open_dataset(f, path, KEY)
        if ds.ndim != ndim or ds.shape[1] != width:
            raise FeatureFileError(f"{path}: '{KEY}' has shape {ds.shape}; expected {what}")
        return np.asarray(ds[...])


def load_classic_features(
    directory: str | Path, keep_regions: bool = False, chunk: int = 64
) -> ClassicFeatures:
    """Load `visual_feature.h5`, `audio_feature.h5`, `labels.h5` of the AVE release from `directory`."""
    directory = Path(directory)
    audio = read_array(directory / "audio_feature.h5", 3, "[N,10,128]").astype(np.float32)  # [N,10,128]
    onehot = read_array(directory / "labels.h5", 3, f"[N,10,{NUM_CLASSES}]")  # [N,10,29]
    if onehot.shape[2] != NUM_CLASSES:
        raise FeatureFileError(f"{directory / 'labels.h5'}: last axis is {onehot.shape[2]}, expected {NUM_CLASSES}")
    labels = onehot.argmax(axis=2).astype(np.int64)  # [N,10]
    visual, regions = _read_visual_chunked(directory / "visual_feature.h5", chunk, keep_regions)
    sizes = {"audio_feature.h5": audio.shape[0], "labels.h5": labels.shape[0], "visual_feature.h5": visual.shape[0]}
    if len(set(sizes.values())) != 1:
        raise FeatureFileError(f"{directory}: files disagree on the number of videos: {sizes}")
    return ClassicFeatures(audio=audio, visual=visual, labels=labels, regions=regions)


def read_video_labels(path: str | Path) -> np.ndarray:
    """float32 [N,29] video-level labels of the release's `mil_labels.h5` (key `avadataset`), for the weak task."""
    return read_array(Path(path), 2, f"[N,{NUM_CLASSES}]", width=NUM_CLASSES).astype(np.float32)


def load_classic_splits(directory: str | Path) -> dict[str, np.ndarray]:
    """train/val/test index arrays (int64, 0-based) from `{train,val,test}_order.h5` (key `order`)."""
    directory = Path(directory)
    out: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        path = directory / f"{split}_order.h5"
        _require_file(path)
        with h5py.File(path, "r") as f:
            out[split] = np.asarray(_open_dataset(f, path, ORDER_KEY)[...], dtype=np.int64).reshape(-1)
    return out


def synthetic_features(
    n: int = 240, audio_dim: int = 32, visual_dim: int = 48, noise: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Features whose labels are recoverable, for tests and demos: (audio, visual, labels, splits).

    Each video has one class c. Its sound is present on a random span and its object visible on another;
    a present modality carries the class-mean vector of c (+ noise), an absent one carries a
    modality-specific "off" vector (+ noise). Event seconds (label c) are where BOTH are present, so
    neither modality alone decides the label; elsewhere the label is background (28).
    Splits: 70% train, 15% val, 15% test.
    """
    rng = np.random.default_rng(seed)
    n_ev = NUM_CLASSES - 1
    means_a = rng.normal(size=(n_ev + 1, audio_dim)).astype(np.float32)  # row n_ev = "silent/other sound"
    means_v = rng.normal(size=(n_ev + 1, visual_dim)).astype(np.float32)  # row n_ev = "not visible"
    cls = rng.integers(0, n_ev, size=n)  # [N]
    t = np.arange(NUM_SEGMENTS)

    def span() -> np.ndarray:
        length = rng.integers(2, NUM_SEGMENTS + 1)
        start = rng.integers(0, NUM_SEGMENTS - length + 1)
        return (t >= start) & (t < start + length)  # [10] bool

    aud = np.stack([span() for _ in range(n)])  # [N,10]
    vis = np.stack([span() if rng.random() < 0.5 else np.ones(NUM_SEGMENTS, bool) for _ in range(n)])  # [N,10]
    ia = np.where(aud, cls[:, None], n_ev)  # [N,10]
    iv = np.where(vis, cls[:, None], n_ev)  # [N,10]
    audio = means_a[ia] + noise * rng.normal(size=(n, NUM_SEGMENTS, audio_dim)).astype(np.float32)  # [N,10,Da]
    visual = means_v[iv] + noise * rng.normal(size=(n, NUM_SEGMENTS, visual_dim)).astype(np.float32)  # [N,10,Dv]
    labels = np.where(aud & vis, cls[:, None], NUM_CLASSES - 1).astype(np.int64)  # [N,10]
    order = rng.permutation(n)
    n_tr, n_va = int(0.7 * n), int(0.15 * n)
    splits = {"train": np.sort(order[:n_tr]), "val": np.sort(order[n_tr : n_tr + n_va]),
              "test": np.sort(order[n_tr + n_va :])}
    return audio.astype(np.float32), visual.astype(np.float32), labels, splits
