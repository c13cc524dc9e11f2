"""Entry points of the tower stages fine-tuning (stage A) and extraction (stage B), from the same initial towers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from avelib.data.ave import load_dataset
from avelib.data.cache import SegmentCache
from avelib.distributed import Launch, Shard, launch, node_processes, ownership, share, spread
from avelib.models.audioclip import AudioCLIPParams, build_audioclip, build_from_params
from avelib.params import ParamsError, resolved, section, value
from avelib.train.contrastive import FinetuneConfig, FinetuneResult, finetune, finished_result
from avelib.train.extract import ExtractConfig, ExtractResult, encode_chunks, extract_features
from avelib.train.recipe_grid import NO_GRID, FinetuneGrid, kept_recipe_line, mark_configured, recipes, run_grid
from avelib.train.seeding import seed_everything


def audioclip_params(params: Mapping[str, Any]) -> AudioCLIPParams:
    """The `audioclip` section of params.yaml (TOWERS' `AudioCLIPParams`)."""
    return section(params, "audioclip", AudioCLIPParams)


def initial_model(params: Mapping[str, Any]) -> nn.Module:
    """The towers fine-tuning starts from: the pretrained checkpoint(s) of the `audioclip` section, or
    (none given) a random init seeded with `finetune.seed`, so `frozen` features use the same weights."""
    seed_everything(_init_seed(params))
    return build_from_params(audioclip_params(params))


def _init_seed(params: Mapping[str, Any]) -> int:
    return value(params, "finetune.seed", int, default=FinetuneConfig.seed)


def _finetune_inputs(params: Mapping[str, Any], cache_dir: str | Path,
                     dataset_root: str | Path) -> tuple[FinetuneConfig, Any, SegmentCache, nn.Module]:
    """(config, dataset, cache, initial towers) of stage A, the cache checked against the annotations."""
    dataset = load_dataset(dataset_root)
    cache = SegmentCache.open(cache_dir)
    if list(cache.video_ids) != [r.video_id for r in dataset.records]:
        raise ValueError(f"{cache_dir}: cache video_ids do not match {dataset_root}/Annotations.txt order; rerun decode")
    return section(params, "finetune", FinetuneConfig), dataset, cache, initial_model(params)


def finetune_jobs(params: Mapping[str, Any], cache_dir: str, dataset_root: str, work: Path,
                  shard: Shard | None = None, progress: bool = True) -> None:
    """A torchrun rank's part of stage A: its share of every batch, on its share of the intra-op threads;
    rank 0 writes the run into `work` (the stage's out_dir)."""
    shard = shard or Shard()
    torch.set_num_threads(max(1, torch.get_num_threads() // node_processes(shard)))
    cfg, dataset, cache, model = _finetune_inputs(params, cache_dir, dataset_root)
    finetune(model, cache, dataset.labels, dataset.splits, cfg, work, progress=progress, rank=shard.rank,
             world=shard.world)


def run_finetune(params: Mapping[str, Any], cache_dir: str | Path, dataset_root: str | Path,
                 out_dir: str | Path, progress: bool = True) -> FinetuneResult:
    """Stage A from `audioclip`, `finetune`, `finetune_grid` (and `distributed`): load labels/splits and the
    cache, build the initial towers, fine-tune once per recipe of the grid (avelib.train.recipe_grid) and keep
    the best on validation; with `distributed.finetune_nproc > 1` one run on that many data-parallel ranks.
    The result carries the grid's table (`grid`, empty without a grid)."""
    ranks = launch(params, "finetune")
    grid = section(params, "finetune_grid", FinetuneGrid) if "finetune_grid" in params else NO_GRID  # a caller may omit it
    configs = recipes(section(params, "finetune", FinetuneConfig), grid)
    if ranks.nproc > 1 and len(configs) > 1:
        raise ParamsError("finetune_grid: a recipe grid runs in one process; empty it or set distributed.finetune_nproc: 1")
    if ranks.nproc <= 1:
        _, dataset, cache, model = _finetune_inputs(params, cache_dir, dataset_root)
        if len(configs) == 1:
            return finetune(model, cache, dataset.labels, dataset.splits, configs[0], out_dir, progress=progress)
        result = run_grid(lambda: initial_model(params), cache, dataset.labels, dataset.splits, configs, out_dir, progress)
        result = replace(result, grid=mark_configured(result.grid, section(params, "finetune", FinetuneConfig)))
        print(kept_recipe_line(result.grid), flush=True)
        return result
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    spread(ranks, "finetune", {"params": dict(params), "cache_dir": str(cache_dir),
                                                     "dataset_root": str(dataset_root), "progress": False}, Path(out_dir))
    return finished_result(initial_model(params), out_dir)


def _extract_towers(params: Mapping[str, Any], checkpoint: str | Path | None) -> tuple[nn.Module, dict[str, Any]]:
    """The towers the extract stage encodes with, and how they were made (for the report)."""
    towers = audioclip_params(params)
    if checkpoint is None:
        return initial_model(params), {"towers": "initial", "audioclip": resolved(towers), "finetune_seed": _init_seed(params)}
    return build_audioclip(towers.profile, str(checkpoint)), {
        "towers": "finetuned", "audioclip": resolved(towers), "checkpoint": str(checkpoint)}


def extract_jobs(params: Mapping[str, Any], cache_dir: str, checkpoint: str | None, work: Path,
                 shard: Shard | None = None, progress: bool = True) -> int:
    """One process's share of the extract stage (avelib.distributed.share): its chunks of seconds, encoded into `work`, on its
    share of this machine's intra-op threads."""
    shard = shard or Shard()
    torch.set_num_threads(max(1, torch.get_num_threads() // node_processes(shard)))
    model, _ = _extract_towers(params, checkpoint)
    return encode_chunks(model, SegmentCache.open(cache_dir), section(params, "extract", ExtractConfig), work,
                         ownership(shard), progress)


JOBS = {"finetune": finetune_jobs, "extract": extract_jobs}


def run_extract(
    params: Mapping[str, Any], cache_dir: str | Path, checkpoint: str | Path | None, out_dir: str | Path,
    progress: bool = True, nproc: int | None = None,
) -> ExtractResult:
    """Stage B from `audioclip`, `finetune`, `extract` (and `distributed`). `checkpoint`: our fine-tuned
    `best.pt` -> `finetuned` features; None -> the towers fine-tuning started from (pretrained, or the
    `finetune.seed` random init) -> `frozen` features. With `distributed.extract_nproc > 1` (or `nproc`, given)
    this process and workers, or with a multi-node `distributed.torchrun_args` torchrun's ranks on every node, encode
    the chunks (avelib.distributed.share) and this process assembles the files."""
    cfg = section(params, "extract", ExtractConfig)
    model, source = _extract_towers(params, checkpoint)
    ranks = launch(params, "extract") if nproc is None else Launch(nproc)
    arguments = {"params": dict(params), "cache_dir": str(cache_dir),
                 "checkpoint": None if checkpoint is None else str(checkpoint), "progress": False}

    def on_ranks(work: Path) -> None:
        share(ranks, "extract", arguments, work, extract_jobs)

    return extract_features(model, SegmentCache.open(cache_dir), cfg, out_dir, progress=progress, extra_report=source,
                            ranks=on_ranks if ranks.more_processes else None)
