"""Entry point of the tower_runs stage: more training runs of the towers, so tower comparisons carry their variance.

Run 0 is the pretrain, finetune and extract stages' own. Run k (1 .. `tower_runs.count` - 1) fine-tunes the
towers again (stage A, `finetune.seed` + k) from run 0's pretrained towers, as every run does from the one
AudioCLIP checkpoint with real weights, then extracts both feature sets; with `tower_runs.pretraining:
per_run` it first pretrains on the same pool (AudioSet is one fixed set; `pretrain.towers.seed` + k). Comparisons between or across tower sets pair run k with run k
(avelib.eval.stats.tower_difference); avelib.data.features.tower_feature_dirs lists the runs' folders
for the stages that compare them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Mapping

from avelib.data.cache import SegmentCache
from avelib.data.pool import pool_labels
from avelib.distributed import Launch, Shard, share, torchrun_args
from avelib.eval.results import pretraining_summary, stage_a_across_runs
from avelib.io import read_json
from avelib.models.audioclip import build_audioclip
from avelib.params import resolved, section, value
from avelib.stages.towers import finetune_jobs, run_extract
from avelib.train.contrastive import FinetuneConfig, finetune
from avelib.train.finetune_record import BEST, HISTORY
from avelib.train.pretrain import PretrainConfig
from avelib.train.seeding import seed_everything


@dataclass(frozen=True)
class TowerRunsConfig:
    """params.yaml section `tower_runs` (design defaults of ours)."""

    count: int = 10
    """Tower runs in all, run 0 (the pretrain, finetune and extract stages') included; 1 = no more."""
    nproc: int = 2
    """Processes sharing runs 1.. (the stage's and workers, or with a multi-node `distributed.torchrun_args`
    torchrun's on each node; avelib.distributed.share), each on 1 thread."""
    pretraining: Literal["shared", "per_run"] = "shared"
    """shared: every run fine-tunes from run 0's pretrained towers, as every run does from the one AudioCLIP
    checkpoint with real weights (only stage A's seed moves); per_run: run k also pretrains, with
    `pretrain.towers.seed` + k (ignored when `pretrain.enabled` is false)."""


def run_name(k: int) -> str:
    return f"run{k}"


def kept_recipe(finetune_summary: Mapping[str, Any]) -> dict[str, Any]:
    """The lr and layers run 0's grid kept (`reports/finetune.json`), {} without a grid."""
    chosen = [g for g in finetune_summary.get("grid") or [] if g["chosen"]]
    return {"lr": chosen[0]["lr"], "layers": chosen[0]["layers"]} if chosen else {}


def run_params(params: Mapping[str, Any], k: int, recipe: Mapping[str, Any], models_dir: Path) -> dict[str, Any]:
    """Run k's params: seeds + k, run 0's recipe; run 0's pretrained start (`audioclip.checkpoint`), or with
    `tower_runs.pretraining: per_run` a pretraining of its own."""
    pretrain, tune = section(params, "pretrain", PretrainConfig), section(params, "finetune", FinetuneConfig)
    own = pretrain.enabled and section(params, "tower_runs", TowerRunsConfig).pretraining == "per_run"
    p = {key: params[key] for key in params if key != "finetune_grid"}
    p["finetune"] = resolved(replace(tune, seed=tune.seed + k, **recipe))
    p["pretrain"] = resolved(replace(pretrain, enabled=own, towers=replace(pretrain.towers, seed=pretrain.towers.seed + k)))
    if own:
        p["audioclip"] = {**params["audioclip"], "checkpoint": str(models_dir / run_name(k) / "pretrain" / BEST)}
    return p


def pretrain_on_pool(params: Mapping[str, Any], pool_dir: str | Path, out_dir: Path, progress: bool) -> None:
    """A per-run pretraining: run k's towers trained on the pretrain stage's pool, an input of this stage. Not
    run_pretrain, which builds the pool from `synth` and `decode` (sections this stage does not read)."""
    labels, splits = pool_labels(pool_dir)
    cfg = section(params, "pretrain", PretrainConfig)
    seed_everything(cfg.towers.seed)  # run k's random init of the towers
    model = build_audioclip(value(params, "audioclip.profile", str), None)
    finetune(model, SegmentCache.open(pool_dir), labels, splits, cfg.towers, out_dir, progress=progress)


def tower_run_jobs(params: Mapping[str, Any], recipe: dict[str, Any], pool_dir: str, cache_dir: str,
                   dataset_root: str, models_dir: str, features_dir: str, work: Path, shard: Shard | None = None,
                   progress: bool = True) -> None:
    """This process's share of runs 1..: pretrain (when enabled), fine-tune and extract each, on one thread
    when shared. Each step resumes or reuses what a killed run left (their own checkpoints and partial dirs)."""
    import torch

    shard = shard or Shard()
    if shard.world > 1:
        torch.set_num_threads(1)
    for k in range(1, section(params, "tower_runs", TowerRunsConfig).count):
        if not shard.take():
            continue
        p, out = run_params(params, k, recipe, Path(models_dir)), Path(models_dir) / run_name(k)
        if section(p, "pretrain", PretrainConfig).enabled:
            pretrain_on_pool(p, pool_dir, out / "pretrain", progress)
        finetune_jobs(p, cache_dir, dataset_root, out / "finetune", progress=progress)  # one process, no grid
        run_extract(p, cache_dir, out / "finetune" / BEST, Path(features_dir) / run_name(k) / "finetuned", progress, nproc=1)
        run_extract(p, cache_dir, None, Path(features_dir) / run_name(k) / "frozen", progress, nproc=1)


JOBS = {"tower_runs": tower_run_jobs}


def run_tower_runs(params: Mapping[str, Any], finetune_summary: str | Path, finetune_history: str | Path,
                   pool_dir: str | Path, models_dir: str | Path, features_dir: str | Path, pretrain_dir: str | Path,
                   frozen_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Extract run 0's frozen features into `frozen_dir` (the quick study trains on the fine-tuned towers only), then
    train runs 1.. of `tower_runs.count` (on `tower_runs.nproc` processes); `reports/tower_runs.json`: stage A
    per run, run 0's from the finetune stage (its `history.json`, and the recipe its grid kept, from
    `reports/finetune.json`), and each run's pretraining (run 0's in `pretrain_dir`; null when disabled)."""
    cfg = section(params, "tower_runs", TowerRunsConfig)
    run_extract(params, value(params, "data.cache_dir", str), None, frozen_dir, progress)  # as the extract stage would
    recipe = kept_recipe(read_json(finetune_summary))
    arguments = {"recipe": recipe, "pool_dir": str(pool_dir), "cache_dir": value(params, "data.cache_dir", str),
                 "dataset_root": value(params, "data.root", str), "models_dir": str(models_dir),
                 "features_dir": str(features_dir)}
    work = Path(models_dir)
    for folder in (work, Path(features_dir)):  # DVC outputs, present with one run too
        folder.mkdir(parents=True, exist_ok=True)
    ranks = Launch(cfg.nproc, torchrun_args(params))
    if ranks.more_processes:  # this process takes rank 0's runs, or torchrun's ranks all of them
        share(ranks, "tower_runs", {"params": dict(params), **arguments, "progress": False}, work, tower_run_jobs)
    else:
        tower_run_jobs(params, **arguments, work=work, progress=progress)
    histories = [read_json(finetune_history)] + [read_json(work / run_name(k) / "finetune" / HISTORY)
                                                 for k in range(1, cfg.count)]
    return {"recipe": recipe, **stage_a_across_runs(histories), "pretraining": _pretrainings(params, pretrain_dir, work),
            "pretraining_design": cfg.pretraining}


def _pretrainings(params: Mapping[str, Any], pretrain_dir: str | Path, work: Path) -> list[dict[str, Any]] | None:
    """Each run's pretraining (kept epoch, pool validation R@1): run 0's for every run when they share it;
    None without a pretraining (real AudioCLIP weights)."""
    if not section(params, "pretrain", PretrainConfig).enabled:
        return None
    cfg = section(params, "tower_runs", TowerRunsConfig)
    own = [work / run_name(k) / "pretrain" for k in range(1, cfg.count)] if cfg.pretraining == "per_run" else []
    folders = [Path(pretrain_dir), *own] if own else [Path(pretrain_dir)] * cfg.count
    return [pretraining_summary(read_json(d / HISTORY)) for d in folders]
