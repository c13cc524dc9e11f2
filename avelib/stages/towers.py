"""Entry points of the tower stages: pretrain, finetune (stage A) and extract (stage B)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from avelib.data.ave import load_dataset
from avelib.data.cache import DecodeConfig, SegmentCache
from avelib.data.synth import SynthConfig
from avelib.io import write_json
from avelib.models.audioclip import AudioCLIPParams, build_audioclip, build_from_params
from avelib.params import resolved, section
from avelib.train.contrastive import FinetuneConfig, FinetuneResult, finetune
from avelib.train.extract import ExtractConfig, ExtractResult, extract_features
from avelib.train.pretrain import SKIPPED, PretrainConfig, pool_config, prepare_pool
from avelib.train.seeding import seed_everything


def audioclip_params(params: Mapping[str, Any]) -> AudioCLIPParams:
    """The `audioclip` section of params.yaml (TOWERS' `AudioCLIPParams`)."""
    return section(params, "audioclip", AudioCLIPParams)


def initial_model(params: Mapping[str, Any]) -> nn.Module:
    """The towers fine-tuning starts from: the pretrained checkpoint(s) of the `audioclip` section, or
    (none given) a random init seeded with `finetune.seed`, so `frozen` features use the same weights."""
    cfg = section(params, "finetune", FinetuneConfig)
    seed_everything(cfg.seed)
    return build_from_params(audioclip_params(params))


def run_pretrain(params: Mapping[str, Any], pool_dir: str | Path, out_dir: str | Path,
                 progress: bool = True) -> FinetuneResult | None:
    """The pretrain stage from `synth`, `decode`, `audioclip`, `pretrain`; None when disabled."""
    cfg = section(params, "pretrain", PretrainConfig)
    out_dir = Path(out_dir)
    if not cfg.enabled:
        Path(pool_dir).mkdir(parents=True, exist_ok=True)
        write_json({"enabled": False, "why": "pretrain.enabled is false"}, out_dir / SKIPPED)
        return None
    (out_dir / SKIPPED).unlink(missing_ok=True)
    synth = pool_config(section(params, "synth", SynthConfig), cfg)
    root, cache_dir = prepare_pool(synth, section(params, "decode", DecodeConfig), pool_dir, progress=progress)
    dataset = load_dataset(root)
    seed_everything(cfg.towers.seed)  # the random init of the towers
    model = build_audioclip(audioclip_params(params).profile, None)
    return finetune(model, SegmentCache.open(cache_dir), dataset.labels, dataset.splits, cfg.towers, out_dir,
                    progress=progress)


def run_finetune(params: Mapping[str, Any], cache_dir: str | Path, dataset_root: str | Path,
                 out_dir: str | Path, progress: bool = True) -> FinetuneResult:
    """Stage A from `audioclip`, `finetune`: load labels/splits and the cache, build the initial towers, fine-tune."""
    cfg = section(params, "finetune", FinetuneConfig)
    dataset = load_dataset(dataset_root)
    cache = SegmentCache.open(cache_dir)
    ids = [r.video_id for r in dataset.records]
    if list(cache.video_ids) != ids:
        raise ValueError(f"{cache_dir}: cache video_ids do not match {dataset_root}/Annotations.txt order; rerun decode")
    model = initial_model(params)
    return finetune(model, cache, dataset.labels, dataset.splits, cfg, out_dir, progress=progress)


def run_extract(
    params: Mapping[str, Any], cache_dir: str | Path, checkpoint: str | Path | None, out_dir: str | Path,
    progress: bool = True,
) -> ExtractResult:
    """Stage B from `audioclip`, `finetune`, `extract`. `checkpoint`: our fine-tuned `best.pt` -> `finetuned`
    features; None -> the towers fine-tuning started from (pretrained, or the `finetune.seed` random init)
    -> `frozen` features."""
    cfg = section(params, "extract", ExtractConfig)
    cache = SegmentCache.open(cache_dir)
    towers = audioclip_params(params)
    if checkpoint is None:
        model = initial_model(params)
        finetune_params = params.get("finetune")
        source = {"towers": "initial", "audioclip": resolved(towers),
                  "finetune_seed": finetune_params.get("seed", 0) if isinstance(finetune_params, Mapping) else 0}
    else:
        model = build_audioclip(towers.profile, str(checkpoint))
        source = {"towers": "finetuned", "audioclip": resolved(towers), "checkpoint": str(checkpoint)}
    return extract_features(model, cache, cfg, out_dir, progress=progress, extra_report=source)
