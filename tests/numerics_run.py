"""A short pretrain -> fine-tune -> localizer run in one process (for test_numerics.py).

`python tests/numerics_run.py OUT` writes OUT/{pretrain,finetune,localizer}/ checkpoints; the test
runs it under two simulated CPU capability settings and compares the files byte for byte.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_contrastive import CFG, make_dataset, model0  # noqa: E402  (the tiny cache of stage A's tests)

from avelib.data.ave import load_dataset  # noqa: E402
from avelib.data.cache import SegmentCache  # noqa: E402
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig  # noqa: E402
from avelib.train.contrastive import finetune  # noqa: E402
from avelib.train.localizer import PhaseConfig, TrainConfig, train_model  # noqa: E402


def main(out: Path) -> None:
    root, cache_dir = make_dataset(out / "data")
    ds, cache = load_dataset(root), SegmentCache.open(cache_dir)
    pre = finetune(model0(), cache, ds.labels, ds.splits, dataclasses.replace(CFG, epochs=1, label_weight=1.0),
                   out / "pretrain", progress=False)
    finetune(pre.model, cache, ds.labels, ds.splits, dataclasses.replace(CFG, epochs=1), out / "finetune", progress=False)
    rng = np.random.default_rng(0)
    audio, visual = rng.standard_normal((2, 40, 10, 128)).astype(np.float32)
    labels = np.where(rng.random((40, 10)) < 0.5, 28, rng.integers(0, 28, (40, 1)))
    splits = {"train": np.arange(30), "val": np.arange(30, 40)}
    torch.manual_seed(0)
    model = AVECLIPLocalizer(LocalizerConfig(), 128, 128)
    cfg = TrainConfig(phases=(PhaseConfig((10,), 1), PhaseConfig((10, 5, 3, 2), 1)), batch_size=16, threads=0)
    train_model(model, (audio, visual), labels, splits, cfg, seed=0, out_dir=out / "localizer", progress=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
