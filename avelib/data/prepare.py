"""The data stage: generate SynthAVE, or unpack and verify the real AVE release."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from avelib.data.ave import AVEDataset, load_dataset
from avelib.data.cache import DataConfig
from avelib.data.synth import SynthConfig, generate

ANNOTATIONS = "Annotations.txt"


def prepare_dataset(data: DataConfig, synth: SynthConfig, progress: bool = True) -> AVEDataset:
    """Make `data.root` a complete AVE-layout dataset and return it loaded."""
    if data.dataset == "release":
        raise ValueError(f"data.dataset = release ({data.root}): the release's features need no data, decode, "
                         "pretrain, finetune or extract stage; run `python -m avelib release-chain` (README)")
    if data.dataset == "synthave":
        generate(synth, data.root, progress=progress)
    elif not (data.root / ANNOTATIONS).is_file():
        if data.ave_zip is None:
            raise FileNotFoundError(
                f"{data.root / ANNOTATIONS}: not found; put the unpacked AVE dataset at data.root "
                "or set data.ave_zip to AVE_Dataset.zip"
            )
        unpack_ave_zip(data.ave_zip, data.root)
    return load_dataset(data.root)


def unpack_ave_zip(zip_path: Path, root: Path) -> Path:
    """Unpack AVE_Dataset.zip safely and move the folder holding Annotations.txt to `root`."""
    from avelib.data.download import safe_extract_zip

    if not Path(zip_path).is_file():
        raise FileNotFoundError(f"{zip_path}: AVE zip not found")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".ave-unpack-") as tmp:
        safe_extract_zip(zip_path, Path(tmp))
        found = sorted(Path(tmp).rglob(ANNOTATIONS))
        if not found:
            raise ValueError(f"{zip_path}: no {ANNOTATIONS} inside; is this the AVE release zip?")
        if root.exists():
            shutil.rmtree(root)
        shutil.move(str(found[0].parent), root)
    return root


def dataset_summary(ds: AVEDataset) -> dict[str, Any]:
    """Counts a reader checks first: split sizes, missing videos, event lengths, background share."""
    missing = [r.video_id for i, r in enumerate(ds.records) if not ds.video_path(i).is_file()]
    lengths = Counter(int(r.end - r.start) for r in ds.records)
    return {
        "root": str(ds.root),
        "samples": len(ds),
        "splits": {k: int(len(v)) for k, v in ds.splits.items()},
        "missing_videos": len(missing),
        "missing_examples": missing[:10],
        "event_lengths": dict(sorted(lengths.items(), reverse=True)),
        "background_fraction": float((ds.labels == 28).mean()),
    }
