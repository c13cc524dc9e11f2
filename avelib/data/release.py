"""The AVE release's features as the localizer stages' input (`data.dataset: release`, `data.root` = their folder).

Every peer (AVEL, PSP, CMBS, LAVisH, ...) trains on the files of the AVE release's `data/` folder:
`visual_feature.h5` [N,10,7,7,512] (VGG19 pool5), `audio_feature.h5` [N,10,128] (VGGish), `labels.h5`
[N,10,29] one-hot, `mil_labels.h5` [N,29] and `{train,val,test}_order.h5` (0-based rows, key `order`).
`load_labels` reads the labels and splits of either dataset kind; `convert_release` writes the features
once in our feature layout (avelib.data.features), so the stages read 85 MB instead of 7.7 GB each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avelib.data.ave import NUM_CLASSES, load_dataset, video_labels
from avelib.data.cache import DataConfig
from avelib.data.features import (
    FEATURE_FILES,
    FeatureFileError,
    load_classic_features,
    load_classic_splits,
    read_array,
    read_video_labels,
    write_features,
)
from avelib.io import read_json, write_json

ENCODER = "release"  # the feature folder name of the release's features under data/features/
FILES = ("visual_feature.h5", "audio_feature.h5", "labels.h5", "mil_labels.h5",
         "train_order.h5", "val_order.h5", "test_order.h5")


@dataclass(frozen=True)
class Labels:
    """What the localizer stages read besides features: labels int64 [N,10], splits, video labels float32 [N,29]."""

    labels: np.ndarray
    splits: dict[str, np.ndarray]
    videos: np.ndarray


def load_labels(data: DataConfig) -> Labels:
    """Labels and splits of `data`: an AVE-layout root (Annotations.txt) or the release's h5 files."""
    if data.dataset != "release":
        dataset = load_dataset(data.root)
        return Labels(dataset.labels, dataset.splits, video_labels(dataset.records))
    root = Path(data.root)
    onehot = read_array(root / "labels.h5", 3, f"[N,10,{NUM_CLASSES}]")  # [N,10,29]
    labels = onehot.argmax(axis=2).astype(np.int64)  # [N,10]
    videos = read_video_labels(root / "mil_labels.h5")  # [N,29]
    splits = load_classic_splits(root)
    _check_rows(root, len(labels), videos, splits)
    return Labels(labels, splits, videos)


def _check_rows(root: Path, n: int, videos: np.ndarray, splits: dict[str, np.ndarray]) -> None:
    """The release's files agree: one row per video everywhere, split rows inside [0, N) and disjoint."""
    if len(videos) != n:
        raise FeatureFileError(f"{root / 'mil_labels.h5'}: {len(videos)} videos, labels.h5 has {n}")
    for name, rows in splits.items():
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise FeatureFileError(f"{root / f'{name}_order.h5'}: rows outside [0, {n}) (the files index 0-based rows)")
    seen = np.concatenate(list(splits.values()))
    if len(np.unique(seen)) != len(seen):
        raise FeatureFileError(f"{root}: a row is in two of the *_order.h5 splits (or twice in one)")


def main_encoder(data: DataConfig) -> str:
    """The feature folder the main run reads: the release's, or the fine-tuned towers'."""
    return ENCODER if data.dataset == "release" else "finetuned"


def _source_record(root: Path) -> dict[str, list[int]]:
    """Size and mtime of each release file: a conversion is redone only when one of them changed."""
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: not an AVE release feature folder, missing {', '.join(missing)}")
    return {name: [(root / name).stat().st_size, (root / name).stat().st_mtime_ns] for name in FILES}


def convert_release(root: str | Path, out: str | Path) -> Path:
    """`out/audio.h5` [N,10,128] and `out/visual_mean.h5` [N,10,512] (pool5 averaged over the 7x7 map)
    from the release folder `root`, float32; skipped when `out/source.json` says the same files made them."""
    root, out = Path(root), Path(out)
    record = {"release": str(root.resolve()), "files": _source_record(root)}
    marker = out / "source.json"
    if marker.is_file() and read_json(marker) == record:
        return out
    load_labels(DataConfig(dataset="release", root=root))  # the labels and splits are checked before the long read
    features = load_classic_features(root)
    write_features(out / FEATURE_FILES["audio"], features.audio)
    write_features(out / FEATURE_FILES["mean"], features.visual)
    write_json(record, marker)  # last: a killed conversion leaves no marker and is redone
    return out
