"""Entry point of the cross-modal stage: A2V / V2A of a zero-shot cosine and a learned distance."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.data.cache import DataConfig, dataset_label
from avelib.data.features import load_feature_set
from avelib.data.release import load_labels
from avelib.eval.tasks import crossmodal_summary
from avelib.params import section, value
from avelib.train.distance import CrossmodalConfig, crossmodal_runs
from avelib.train.localizer import EvalConfig


def run_crossmodal(params: Mapping[str, Any], features_root: str | Path, progress: bool = True) -> dict[str, Any]:
    """`reports/crossmodal.json`: A2V / V2A of zero-shot cosine and the learned distance per `crossmodal.encoders`."""
    data = section(params, "data", DataConfig)
    dataset = load_labels(data)
    seeds = value(params, "evaluate.seeds", tuple[int, ...], default=EvalConfig.seeds)
    frames = value(params, "evaluate.visual", str, default=EvalConfig.visual)
    cfg = section(params, "crossmodal", CrossmodalConfig)
    by_encoder = {}
    for enc in cfg.encoders:
        audio, visual = load_feature_set(Path(features_root) / enc, visual=frames)
        by_encoder[enc] = crossmodal_runs(audio, visual, dataset.labels, dataset.splits, cfg, seeds, progress)
    return crossmodal_summary(by_encoder, dataset_label(data), list(seeds))
