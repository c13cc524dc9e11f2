"""avelib: the AVE-CLIP reproduction suite.

Importing it sets the thread count and deterministic algorithms (avelib.runtime): the same machine,
thread count and seed give the same bits.

The public API is `PUBLIC_API` below: each name is loaded from its module on first use
(`avelib.finetune`), so `import avelib` stays cheap. The layers, lowest first: runtime/io/params,
data, models, eval, train, stages/viz, predict (and tools), report/explore, the stage runner
and the command line (tests/test_architecture.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from avelib.runtime import set_numerics as _set_numerics

NUMERICS = _set_numerics()

PUBLIC_API: dict[str, str] = {
    # data: the AVE layout, SynthAVE, decoding, the segment cache, extracted features
    "load_dataset": "avelib.data.ave",
    "generate": "avelib.data.synth",
    "decode_video": "avelib.data.media",
    "build_cache": "avelib.data.cache",
    "SegmentCache": "avelib.data.cache",
    "load_feature_set": "avelib.data.features",
    # models: the AudioCLIP towers and the localizer
    "build_audioclip": "avelib.models.audioclip",
    "AudioCLIP": "avelib.models.audioclip",
    "AVECLIPLocalizer": "avelib.models.localizer",
    "LocalizerConfig": "avelib.models.localizer",
    # training and evaluation
    "FinetuneConfig": "avelib.train.contrastive",
    "finetune": "avelib.train.contrastive",
    "extract_features": "avelib.train.extract",
    "TrainConfig": "avelib.train.localizer",
    "EvalConfig": "avelib.train.localizer",
    "train_model": "avelib.train.localizer",
    "train_seeds": "avelib.train.runs",
    "train_variants": "avelib.train.runs",
    "segment_accuracy": "avelib.eval.metrics",
    "train_weak_seeds": "avelib.train.weak",
    "crossmodal_runs": "avelib.train.distance",
    # the stages, own videos, the report
    "run_pretrain": "avelib.stages.pretrain",
    "run_finetune": "avelib.stages.towers",
    "run_extract": "avelib.stages.towers",
    "run_train": "avelib.stages.localizer",
    "run_evaluate": "avelib.stages.localizer",
    "run_ablation": "avelib.stages.localizer",
    "run_axis": "avelib.train.ablations",
    "run_weak": "avelib.stages.weak",
    "run_crossmodal": "avelib.stages.crossmodal",
    "load_localizer": "avelib.predict",
    "predict_video": "avelib.predict",
    "build_index": "avelib.report",
    "load_params": "avelib.params",
}
__all__ = sorted(PUBLIC_API)


def __getattr__(name: str) -> Any:
    if name not in PUBLIC_API:
        raise AttributeError(f"module 'avelib' has no attribute {name!r}")
    return getattr(importlib.import_module(PUBLIC_API[name]), name)
