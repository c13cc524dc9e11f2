"""Entry point of the cross-modal stage: A2V / V2A of a zero-shot cosine and a learned distance."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.data.cache import DataConfig, dataset_label
from avelib.data.features import load_feature_set, study_encoders, tower_feature_dirs, tower_run_count
from avelib.data.release import load_labels, main_encoder
from avelib.eval.tasks import crossmodal_summary
from avelib.params import section, value
from avelib.train.distance import CrossmodalConfig, crossmodal_runs
from avelib.train.localizer import EvalConfig
from avelib.train.seeding import tower_run_seeds


def run_crossmodal(params: Mapping[str, Any], features_root: str | Path, progress: bool = True) -> dict[str, Any]:
    """`reports/crossmodal.json`: A2V / V2A of zero-shot cosine and the learned distance per `crossmodal.encoders` on
    every tower run of `tower_runs.count` (each run on its own seeds), or on run 0's main features in the quick study
    (avelib.data.features.study_encoders)."""
    data = section(params, "data", DataConfig)
    dataset = load_labels(data)
    seeds = value(params, "evaluate.seeds", tuple[int, ...], default=EvalConfig.seeds)
    frames = value(params, "evaluate.visual", str, default=EvalConfig.visual)
    cfg = section(params, "crossmodal", CrossmodalConfig)
    folders = {enc: tower_feature_dirs(features_root, enc, tower_run_count(params))
               for enc in study_encoders(cfg.encoders, params, main_encoder(data))}
    runs = {enc: [crossmodal_runs(*load_feature_set(folder, visual=frames), dataset.labels, dataset.splits, cfg,
                                  tower_run_seeds(seeds, k), progress) for k, folder in enumerate(runs_of)]
            for enc, runs_of in folders.items()}
    return crossmodal_summary({enc: r[0] for enc, r in runs.items()}, dataset_label(data), list(seeds),
                              {enc: r[1:] for enc, r in runs.items()})
