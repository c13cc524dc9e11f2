"""Entry points of the localizer stages: train, evaluate and one ablation axis.

Each builds its output in `<out_dir>.partial/` (avelib.io.resumable_dir): a killed run is continued
by the next one with the same params, and seeds whose training finished are not trained again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.data.ave import load_dataset
from avelib.data.cache import DataConfig
from avelib.data.prepare import dataset_label
from avelib.io import read_json, resumable_dir
from avelib.models.localizer import LocalizerConfig
from avelib.params import section
from avelib.train.ablations import run_axis
from avelib.train.localizer import EvalConfig, TrainConfig
from avelib.train.runs import evaluate_seeds, evaluate_variants


def _localizer_configs(params: Mapping[str, Any]) -> tuple[LocalizerConfig, TrainConfig, EvalConfig]:
    return (section(params, "localizer", LocalizerConfig), section(params, "train", TrainConfig),
            section(params, "evaluate", EvalConfig))


def _record(stage: str, params: Mapping[str, Any], **inputs: Any) -> dict[str, Any]:
    """What a partial output of `stage` was made with: a rerun continues it only when this is equal."""
    return {"stage": stage, "params": {k: params[k] for k in sorted(params)}, **inputs}


def run_train(params: Mapping[str, Any], features_dir: str | Path, out_dir: str | Path,
              progress: bool = True) -> dict[str, Any]:
    """The train stage from `data`, `localizer`, `train`, `evaluate`: AVE-CLIP over the seeds."""
    data = section(params, "data", DataConfig)
    dataset = load_dataset(data.root)
    loc, train, evaluate = _localizer_configs(params)
    with resumable_dir(out_dir, _record("train", params, features=str(features_dir))) as (work, _):
        return evaluate_seeds(features_dir, dataset.labels, dataset.splits, "aveclip", loc, train, evaluate, out_dir=work,
                              dataset=dataset_label(data), encoder=Path(features_dir).name, progress=progress)


def run_evaluate(params: Mapping[str, Any], features_dir: str | Path, out_dir: str | Path,
                 names: tuple[str, ...], progress: bool = True) -> dict[str, Any]:
    """The evaluate stage's runs `names` (avelib.train.runs.VARIANTS) on the same features and seeds."""
    data = section(params, "data", DataConfig)
    dataset = load_dataset(data.root)
    loc, train, evaluate = _localizer_configs(params)
    with resumable_dir(out_dir, _record("evaluate", params, features=str(features_dir), names=list(names))) as (work, _):
        return evaluate_variants(features_dir, dataset.labels, dataset.splits, loc, train, evaluate, out_dir=work,
                                 dataset=dataset_label(data), names=names, encoder=Path(features_dir).name,
                                 progress=progress)["variants"]


def run_ablation(params: Mapping[str, Any], axis: str, features_root: str | Path, main_metrics: str | Path,
                 out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """One ablation axis from `data`, `localizer`, `train`, `evaluate`, `ablations.<axis>`."""
    data = section(params, "data", DataConfig)
    dataset = load_dataset(data.root)
    variants = params["ablations"][axis]
    base = {k: params[k] for k in ("localizer", "train", "evaluate")}
    main = read_json(main_metrics)
    with resumable_dir(out_dir, _record("ablate", params, axis=axis, features=str(features_root))) as (work, _):
        return run_axis(axis, variants, base, features_root, dataset.labels, dataset.splits, dataset_label(data),
                        main_run=main, out_dir=work, progress=progress)
