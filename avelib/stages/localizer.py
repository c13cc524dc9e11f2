"""Entry points of the localizer stages: train, evaluate and one ablation axis.

Each builds its output in `<out_dir>.partial/` (avelib.io.resumable_dir): a killed run is continued
by the next one with the same params, and seeds whose training finished are not trained again. With
`distributed.localizer_nproc > 1` the seeds are first trained on that many processes (avelib.distributed.share,
the `*_jobs` functions below); the stage then evaluates on the same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.data.cache import DataConfig, dataset_label
from avelib.data.features import tower_run_count
from avelib.data.release import load_labels, main_encoder
from avelib.distributed import Shard, launch, ownership, share
from avelib.io import read_json, resumable_dir
from avelib.models.localizer import LocalizerConfig
from avelib.params import resolved, section, value
from avelib.train.ablations import run_axis
from avelib.train.localizer import BaselinesConfig, EvalConfig, TrainConfig
from avelib.train.runs import train_seeds, train_variants


PEER_AXES = ("modality",)  # its one-modality runs are main-table runs: they record the peers' protocol too


def localizer_configs(params: Mapping[str, Any]) -> tuple[LocalizerConfig, TrainConfig, EvalConfig]:
    return (section(params, "localizer", LocalizerConfig), section(params, "train", TrainConfig),
            section(params, "evaluate", EvalConfig))


def stage_record(stage: str, params: Mapping[str, Any], **inputs: Any) -> dict[str, Any]:
    """What a partial output of `stage` was made with: a rerun continues it only when this is equal
    (the process count is left out: it changes the schedule, not the results)."""
    return {"stage": stage, "params": {k: params[k] for k in sorted(params) if k != "distributed"}, **inputs}


def train_jobs(params: Mapping[str, Any], features_dir: str, work: Path, shard: Shard | None = None,
               progress: bool = True) -> dict[str, Any]:
    """The train stage's runs in `work` (with a shard: only that process's seeds, trained, not evaluated)."""
    data = section(params, "data", DataConfig)
    dataset = load_labels(data)
    loc, train, evaluate = localizer_configs(params)
    return train_seeds(features_dir, dataset.labels, dataset.splits, "aveclip", loc, train, evaluate, out_dir=work,
                          dataset=dataset_label(data), encoder=Path(features_dir).name, progress=progress,
                          owns_next=ownership(shard), peer_protocol=True)


def evaluate_jobs(params: Mapping[str, Any], features_dir: str, names: list[str], work: Path,
                  shard: Shard | None = None, progress: bool = True) -> dict[str, Any]:
    """The evaluate stage's runs `names` (baselines of avelib.train.runs.VARIANTS) in `work`."""
    data = section(params, "data", DataConfig)
    dataset = load_labels(data)
    train, evaluate = section(params, "train", TrainConfig), section(params, "evaluate", EvalConfig)
    return train_variants(features_dir, dataset.labels, dataset.splits, None, train, evaluate, out_dir=work,
                             dataset=dataset_label(data), names=tuple(names), encoder=Path(features_dir).name,
                             progress=progress, owns_next=ownership(shard),
                             baselines=section(params, "baselines", BaselinesConfig), peer_protocol=True)


def ablation_jobs(params: Mapping[str, Any], axis: str, features_root: str, main_metrics: str, work: Path,
                  shard: Shard | None = None, progress: bool = True) -> dict[str, Any]:
    """One ablation axis's variants in `work`."""
    data = section(params, "data", DataConfig)
    dataset = load_labels(data)
    base = dict(zip(("localizer", "train", "evaluate"), map(resolved, localizer_configs(params))))
    return run_axis(axis, value(params, f"ablations.{axis}"), base, features_root, dataset.labels, dataset.splits,
                    dataset_label(data), main_run=read_json(main_metrics), main_dir=Path(main_metrics).parent,
                    out_dir=work, progress=progress, owns_next=ownership(shard), main_features=main_encoder(data),
                    peer_protocol=axis in PEER_AXES, tower_runs=tower_run_count(params))


JOBS = {"train": train_jobs, "evaluate": evaluate_jobs, "ablate": ablation_jobs}


def _run(stage: str, params: Mapping[str, Any], out_dir: str | Path, progress: bool, **arguments: Any) -> dict[str, Any]:
    """Build `out_dir` resumably: the ranks train first (if any), then this process evaluates every run."""
    with resumable_dir(out_dir, stage_record(stage, params, **arguments)) as (work, _):
        share(launch(params, "localizer"), stage, {"params": dict(params), **arguments, "progress": False}, work,
              JOBS[stage])
        return JOBS[stage](params, **arguments, work=work, progress=progress)


def run_train(params: Mapping[str, Any], features_dir: str | Path, out_dir: str | Path,
              progress: bool = True) -> dict[str, Any]:
    """The train stage from `data`, `localizer`, `train`, `evaluate` (and `distributed`): AVE-CLIP over the seeds."""
    return _run("train", params, out_dir, progress, features_dir=str(features_dir))


def run_evaluate(params: Mapping[str, Any], features_dir: str | Path, out_dir: str | Path,
                 names: tuple[str, ...], progress: bool = True) -> dict[str, Any]:
    """The evaluate stage: the baselines `names` (avelib.train.runs.VARIANTS) on the train stage's features and
    seeds. The one-modality AVE-CLIP runs are the `modality` ablation axis (no configuration is trained twice)."""
    return _run("evaluate", params, out_dir, progress, features_dir=str(features_dir), names=list(names))["variants"]


def run_ablation(params: Mapping[str, Any], axis: str, features_root: str | Path, main_metrics: str | Path,
                 out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """One ablation axis from `data`, `localizer`, `train`, `evaluate`, `ablations.<axis>`."""
    return _run("ablate", params, out_dir, progress, axis=axis, features_root=str(features_root),
                main_metrics=str(main_metrics))
