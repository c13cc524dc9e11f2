"""Entry points of the other two AVE tasks on the extracted features: weak supervision and A2V / V2A.

Both read every feature folder named in their params (fine-tuned and frozen towers by default). The
weak stage builds its per-seed records in `<out_dir>.partial/` (avelib.io.resumable_dir), so a killed
run keeps the seeds it finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.data.ave import load_dataset, video_labels
from avelib.data.cache import DataConfig
from avelib.data.features import load_feature_set
from avelib.data.prepare import dataset_label
from avelib.distributed import Shard, distributed_config, spread
from avelib.eval.tasks import crossmodal_summary, weak_summary
from avelib.io import read_json, resumable_dir
from avelib.params import section
from avelib.stages.localizer import localizer_configs, stage_record
from avelib.train.distance import CrossmodalConfig, crossmodal_runs
from avelib.train.localizer import EvalConfig
from avelib.train.weak import FIXED_THRESHOLD, WeakConfig, evaluate_weak

WEAK_PROTOCOL = (
    "Training reads video-level labels only (mil_labels.h5: the video's category). The epoch is kept by the "
    "lowest validation loss against validation video-level labels. The per-second threshold is chosen on "
    "validation segment accuracy, as AVEL's weak protocol reads validation segment labels for its model choice; "
    f"'fixed' rows use threshold {FIXED_THRESHOLD} and no segment label at all."
)


def weak_jobs(params: Mapping[str, Any], features_root: str, work: Path, shard: Shard | None = None,
              progress: bool = True) -> dict[tuple[str, str], Any]:
    """Every model of `weak.models` trained weakly on every `weak.encoders` folder, records in `work`."""
    dataset = load_dataset(section(params, "data", DataConfig).root)
    loc, train, evaluate = localizer_configs(params)
    weak = section(params, "weak", WeakConfig)
    videos = video_labels(dataset.records)  # [N,29]
    runs = {}
    for enc in weak.encoders:
        features = load_feature_set(Path(features_root) / enc, visual=evaluate.visual)
        for kind in weak.models:
            cfg = loc if kind == "aveclip" else evaluate.baseline
            runs[(kind, enc)] = evaluate_weak(features, videos, dataset.labels, dataset.splits, kind, cfg, train, evaluate,
                                              weak, out_dir=work / kind / enc, progress=progress, shard=shard)
    return runs


JOBS = {"weak": weak_jobs}


def run_weak(params: Mapping[str, Any], features_root: str | Path, supervised_metrics: str | Path | None,
             out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """`reports/weak.json`: the weak runs (on `distributed.localizer_nproc` ranks), paired against the supervised one."""
    arguments = {"features_root": str(features_root)}
    with resumable_dir(out_dir, stage_record("weak", params, **arguments)) as (work, _):
        ranks = distributed_config(params)
        spread(ranks, ranks.localizer_nproc, "weak", {"params": dict(params), **arguments, "progress": False}, work)
        runs = weak_jobs(params, **arguments, work=work, progress=progress)
    supervised = read_json(supervised_metrics) if supervised_metrics else None
    return weak_summary(runs, supervised, dataset_label(section(params, "data", DataConfig)), WEAK_PROTOCOL)


def run_crossmodal(params: Mapping[str, Any], features_root: str | Path, progress: bool = True) -> dict[str, Any]:
    """`reports/crossmodal.json`: A2V / V2A of zero-shot cosine and the learned distance per `crossmodal.encoders`."""
    data = section(params, "data", DataConfig)
    dataset = load_dataset(data.root)
    evaluate = section(params, "evaluate", EvalConfig)
    cfg = section(params, "crossmodal", CrossmodalConfig)
    by_encoder = {}
    for enc in cfg.encoders:
        audio, visual = load_feature_set(Path(features_root) / enc, visual=evaluate.visual)
        by_encoder[enc] = crossmodal_runs(audio, visual, dataset.labels, dataset.splits, cfg, evaluate.seeds, progress)
    return crossmodal_summary(by_encoder, dataset_label(data), list(evaluate.seeds))
