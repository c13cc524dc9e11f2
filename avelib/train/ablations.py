"""The ablation grid: each variant = overrides of the params sections, trained over the seeds.

A variant in params.yaml (`ablations.<axis>.<name>`) may set `features` (which towers' features:
finetuned | frozen) and partial `localizer`, `train` and `evaluate` sections that are merged over
the main ones and validated like them. Everything else follows the main run's protocol (epoch and
post-processing L chosen on validation, mean +- std over `evaluate.seeds`). A variant on other towers'
features is also trained, with the full model, on the features of every further tower run
(`tower_runs.count` in the tower-run study, avelib.stages.tower_runs), and compared with the full model
across the runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from avelib.data.features import TOWER_RUNS_DIR, tower_feature_dirs
from avelib.eval.results import summary
from avelib.eval.stats import compare_tower_runs
from avelib.io import read_json, write_json
from avelib.models.localizer import LocalizerConfig
from avelib.params import ParamsError, from_dict
from avelib.train.localizer import EvalConfig, PhaseConfig, TrainConfig
from avelib.train.runs import train_seeds
from avelib.train.seeding import tower_run_seeds

VARIANT_KEYS = ("features", "localizer", "train", "evaluate")


def variant_configs(
    overrides: Mapping[str, Any], base: Mapping[str, Mapping[str, Any]], where: str, main_features: str = "finetuned"
) -> tuple[str, LocalizerConfig, TrainConfig, EvalConfig]:
    """(features name, localizer, train, evaluate configs) of one variant over the `base` sections; a variant
    without `features` reads the main run's (`main_features`)."""
    unknown = sorted(set(overrides) - set(VARIANT_KEYS))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; a variant may set {list(VARIANT_KEYS)}")
    merged = {k: {**base[k], **overrides.get(k, {})} for k in ("localizer", "train", "evaluate")}
    loc = from_dict(LocalizerConfig, merged["localizer"], f"{where}.localizer")
    train = _phases_within(from_dict(TrainConfig, merged["train"], f"{where}.train"), loc.windows)
    evaluate = from_dict(EvalConfig, merged["evaluate"], f"{where}.evaluate")
    return str(overrides.get("features", main_features)), loc, train, evaluate


def _phases_within(train: TrainConfig, windows: Any) -> TrainConfig:
    """Keep each multi-scale phase to the variant's window set (a phase left empty uses all of it)."""
    allowed = tuple(windows)
    phases = tuple(
        PhaseConfig(tuple(w for w in p.windows if w in allowed) or allowed, p.epochs) for p in train.phases
    )
    return dataclasses.replace(train, phases=phases)


def same_training(a: tuple[str, LocalizerConfig, TrainConfig, EvalConfig],
                  b: tuple[str, LocalizerConfig, TrainConfig, EvalConfig]) -> bool:
    """Whether two variants train the same models (features, configs and visual input): only evaluation differs."""
    return a[:3] == b[:3] and a[3].visual == b[3].visual


def run_axis(
    axis: str,
    variants: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, Mapping[str, Any]],
    features_root: str | Path,
    labels: np.ndarray,
    splits: Mapping[str, np.ndarray],
    dataset: str,
    main_run: Mapping[str, Any] | None = None,
    main_dir: str | Path | None = None,
    progress: bool = True,
    out_dir: str | Path | None = None,
    owns_next: Callable[[], bool] | None = None,
    main_features: str = "finetuned",
    peer_protocol: bool = False,
    tower_runs: int = 1,
) -> dict[str, Any]:
    """Train and test every variant of one axis; the `reports/ablations/<axis>.json` content.

    A variant whose configs equal the main run's (`main_run`: the train stage's metrics, trained on
    the `main_features` folder) reuses its numbers instead of training the same thing again; one that
    trains the same but evaluates otherwise (e.g. no post-processing) continues from the main run's
    checkpoints in `main_dir` and is only evaluated. Each
    variant's `vs_reference` is its paired test difference to the full model (the main run), and
    `is_full_model` marks the variant that is the full model itself. With `out_dir`, each trained
    variant keeps its seeds' checkpoints in `<out_dir>/<variant>/` (and resumes from them). With
    `peer_protocol` each trained variant also records the peers' test-selected figures (avelib.eval.peer).
    `owns_next`: one process's share of the seeds of every trained run, as in train_seeds ({} is returned).
    A variant on other towers' features is also trained, with the full model, on tower runs 1 .. `tower_runs` - 1;
    with one tower run (the quick study) it is not trained at all and listed under `in_tower_run_study`.
    """
    main_configs = variant_configs({}, base, "main run", main_features)  # not a params key: base reads are the stage's own
    configs = {name: variant_configs(variants[name] or {}, base, f"ablations.{axis}.{name}", main_features)
               for name in sorted(variants)}  # name order: see _run0_variants
    trained_here = {name: c for name, c in configs.items() if c[0] == main_features or tower_runs > 1}
    full = {name for name, c in trained_here.items() if c == main_configs}

    def train_variant(name: str, features_dir: Path, trained: str | Path | None) -> dict[str, Any]:
        return train_seeds(features_dir, labels, dict(splits), "aveclip", *configs[name][1:],
                           out_dir=Path(out_dir) / name if out_dir is not None else None, dataset=dataset,
                           progress=progress, encoder=configs[name][0], owns_next=owns_next, trained=trained,
                           peer_protocol=peer_protocol)

    runs = _run0_variants(trained_here, main_configs, full, main_run, main_dir, Path(features_root), train_variant)
    other_towers = {name: c for name, c in trained_here.items() if c[0] != main_features}
    more = _tower_runs({FULL_MODEL: main_configs, **other_towers}, features_root, tower_runs, labels, splits, dataset,
                       progress, out_dir, owns_next) if other_towers else {}
    if owns_next is not None:  # a rank or worker only trains (avelib.distributed)
        return {}
    reference = main_run if main_run is not None else next((runs[n] for n in sorted(runs) if n in full), None)
    entries = _entries(axis, variants, runs, more, reference, full, set(other_towers), dataset)
    elsewhere = [name for name in variants if name not in runs]
    return {"axis": axis, "variants": entries, **({"in_tower_run_study": elsewhere} if elsewhere else {})}


def _run0_variants(configs: Mapping[str, tuple[str, LocalizerConfig, TrainConfig, EvalConfig]],
                   main_configs: tuple[str, LocalizerConfig, TrainConfig, EvalConfig], full: set[str],
                   main_run: Mapping[str, Any] | None, main_dir: str | Path | None, features_root: Path,
                   train_variant: Callable[[str, Path, str | Path | None], dict[str, Any]]) -> dict[str, Any]:
    """Each variant's runs on run 0's towers: the main run's numbers for the full model where given, else trained
    (only evaluated from `main_dir`'s checkpoints when it trains as the main run)."""
    runs: dict[str, Any] = {}
    # jobs in name order: every process numbers them alike, whatever order its params came in (a worker's
    # spec is key-sorted JSON); the attention axis's variants were trained twice and half of them by no worker
    for name in sorted(configs):
        if main_run is not None and name in full:
            runs[name] = main_run
            continue
        trained = main_dir if main_dir is not None and same_training(configs[name], main_configs) else None
        runs[name] = train_variant(name, features_root / configs[name][0], trained)
    return runs


def _entries(axis: str, variants: Mapping[str, Mapping[str, Any]], runs: Mapping[str, Any],
             more: Mapping[str, list[dict[str, Any]]], reference: Mapping[str, Any] | None, full: set[str],
             other_towers: set[str], dataset: str) -> list[dict[str, Any]]:
    """The axis file's variants in params order; with further tower runs, each run's test accuracy, run 0 first
    (the spread of run 0's numbers, avelib.eval.compare)."""
    full_runs = [reference, *more.get(FULL_MODEL, [])]
    entries = []
    for name in (n for n in variants if n in runs):
        entry = _entry(axis, name, variants[name] or {}, runs[name], reference, name in full, dataset,
                       full_runs if name in other_towers else None, more.get(name, []))
        runs_of = full_runs if entry["is_full_model"] else [runs[name], *more.get(name, [])]
        if more and len(runs_of) > 1:
            entry["across_tower_runs"] = [r["test_accuracy"]["mean"] for r in runs_of]
        entries.append(entry)
    return entries


FULL_MODEL = "full_model"  # the full model's runs on tower runs 1.. (under <out_dir>/tower_runs/run<k>/)


def _tower_runs(configs: Mapping[str, tuple[str, LocalizerConfig, TrainConfig, EvalConfig]], features_root: str | Path,
                count: int, labels: np.ndarray, splits: Mapping[str, np.ndarray], dataset: str, progress: bool,
                out_dir: str | Path | None, owns_next: Callable[[], bool] | None) -> dict[str, list[dict[str, Any]]]:
    """Each of `configs` trained again on the features of tower runs 1 .. count - 1, each run on its own seeds."""
    folders = {enc: tower_feature_dirs(features_root, enc, count) for enc in sorted({c[0] for c in configs.values()})}
    more: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for k in range(1, count):
        for name in sorted(configs):
            features, loc, train, evaluate = configs[name]
            where = Path(out_dir) / TOWER_RUNS_DIR / f"run{k}" / name if out_dir is not None else None
            seeds = dataclasses.replace(evaluate, seeds=tower_run_seeds(evaluate.seeds, k))
            more[name].append(train_seeds(folders[features][k], labels, dict(splits), "aveclip", loc, train, seeds,
                                          out_dir=where, dataset=dataset, progress=progress, encoder=features,
                                          owns_next=owns_next))
    return more


def _entry(axis: str, name: str, overrides: Mapping[str, Any], run: Mapping[str, Any],
           reference: Mapping[str, Any] | None, is_full: bool, dataset: str,
           references: list[Mapping[str, Any]] | None, more: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One variant of `reports/ablations/<axis>.json`. On other towers' features (`references`: the full model on
    each tower run), its comparison pairs tower run with tower run (avelib.eval.stats.tower_difference)."""
    entry = {"axis": axis, "name": name, "params": dict(overrides), "dataset": dataset, "is_full_model": is_full,
             **summary(run, reference), "chosen_max_len": run["chosen_max_len"]}
    if entry["vs_reference"] and references is not None:
        entry["vs_reference"] = compare_tower_runs([run, *more], references)
    return entry


def merge_axes(paths: list[Path]) -> dict[str, Any]:
    """`reports/ablations.json`: the variants of every axis file, in the order given, and by axis the variants
    left to the tower-run study."""
    variants: list[dict[str, Any]] = []
    elsewhere: dict[str, list[str]] = {}
    for path in paths:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
            raise ValueError(f"{path}: expected an ablation axis file with a 'variants' list")
        variants.extend(data["variants"])
        if data.get("in_tower_run_study"):
            elsewhere[str(data["axis"])] = list(data["in_tower_run_study"])
    return {"variants": variants, **({"in_tower_run_study": elsewhere} if elsewhere else {})}


def write_axis(result: Mapping[str, Any], path: str | Path) -> None:
    write_json(dict(result), path)
