"""Entry point of the weak stage: localization trained from video-level labels only.

Every model of `weak.models` is trained on every feature folder of `weak.encoders` (fine-tuned and
frozen towers by default) of every tower run in the tower-run study (`tower_runs.count`, avelib.stages.tower_runs),
each run on its own seeds; the quick study trains on run 0's main features only (avelib.data.features.study_encoders).
The per-seed records are built in `<out_dir>.partial/` (avelib.io.resumable_dir), so a killed run keeps the seeds it
finished.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from avelib.data.cache import DataConfig, dataset_label
from avelib.data.features import TOWER_RUNS_DIR, load_feature_set, study_encoders, tower_feature_dirs, tower_run_count
from avelib.data.release import load_labels, main_encoder
from avelib.distributed import Shard, launch, ownership, share
from avelib.eval.tasks import weak_summary
from avelib.io import read_json, resumable_dir
from avelib.params import section
from avelib.stages.localizer import localizer_configs, stage_record
from avelib.train.localizer import BaselinesConfig
from avelib.train.seeding import tower_run_seeds
from avelib.train.weak import FIXED_THRESHOLD, WeakConfig, train_weak_seeds

WEAK_PROTOCOL = (
    "Training reads video-level labels only (mil_labels.h5: the video's category). The epoch is kept by the "
    "lowest validation loss against validation video-level labels. The per-second threshold is chosen on "
    "validation segment accuracy, as AVEL's weak protocol reads validation segment labels for its model choice; "
    f"'fixed' rows use threshold {FIXED_THRESHOLD} and no segment label at all."
)


def weak_jobs(params: Mapping[str, Any], features_root: str, work: Path, shard: Shard | None = None,
              progress: bool = True) -> dict[tuple[str, str], list[Any]]:
    """Every model of `weak.models` trained weakly on the `weak.encoders` folders of the study
    (avelib.data.features.study_encoders, tower_feature_dirs), records in `work`: {(model, encoder): [run 0's, run 1's, ...]}."""
    data = section(params, "data", DataConfig)
    dataset = load_labels(data)
    loc, train, evaluate = localizer_configs(params)
    weak = section(params, "weak", WeakConfig)
    baselines = section(params, "baselines", BaselinesConfig)
    owns_next = ownership(shard)  # one order of seeds over every run below
    runs: dict[tuple[str, str], list[Any]] = {}
    for enc in study_encoders(weak.encoders, params, main_encoder(data)):
        for k, folder in enumerate(tower_feature_dirs(features_root, enc, tower_run_count(params))):
            features = load_feature_set(folder, visual=evaluate.visual)
            seeds = replace(evaluate, seeds=tower_run_seeds(evaluate.seeds, k))
            for kind in weak.models:
                cfg, tc = (loc, train) if kind == "aveclip" else (baselines.model, baselines.train_config(train, kind, weak=True))
                where = work / kind / enc if k == 0 else work / TOWER_RUNS_DIR / f"run{k}" / kind / enc
                runs.setdefault((kind, enc), []).append(train_weak_seeds(
                    features, dataset.videos, dataset.labels, dataset.splits, kind, cfg, tc, seeds, weak,
                    out_dir=where, progress=progress, owns_next=owns_next))
    return runs


JOBS = {"weak": weak_jobs}


def run_weak(params: Mapping[str, Any], features_root: str | Path, supervised_metrics: str | Path | None,
             out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """`reports/weak.json`: the weak runs (on `distributed.localizer_nproc` ranks), paired against the supervised one."""
    arguments = {"features_root": str(features_root)}
    with resumable_dir(out_dir, stage_record("weak", params, **arguments)) as (work, _):
        share(launch(params, "localizer"), "weak", {"params": dict(params), **arguments, "progress": False}, work,
              weak_jobs)
        runs = weak_jobs(params, **arguments, work=work, progress=progress)
    supervised = read_json(supervised_metrics) if supervised_metrics else None
    return weak_summary({key: r[0] for key, r in runs.items()}, supervised,
                        dataset_label(section(params, "data", DataConfig)), WEAK_PROTOCOL,
                        {key: r[1:] for key, r in runs.items()})
