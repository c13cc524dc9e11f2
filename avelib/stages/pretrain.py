"""Entry point of the pretrain stage: a pretrained start for the small towers (AudioCLIP's pretraining in miniature)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.data.cache import DecodeConfig, SegmentCache
from avelib.data.pool import build_pool, pool_labels
from avelib.data.synth import SynthConfig
from avelib.io import write_json
from avelib.models.audioclip import build_audioclip
from avelib.params import ParamsError, section, value
from avelib.train.contrastive import FinetuneResult, finetune
from avelib.train.pretrain import SKIPPED, PretrainConfig
from avelib.train.seeding import seed_everything


def run_pretrain(params: Mapping[str, Any], pool_dir: str | Path, out_dir: str | Path,
                 progress: bool = True) -> FinetuneResult | None:
    """The pretrain stage from `synth`, `decode`, `audioclip`, `pretrain`; None when disabled."""
    cfg = section(params, "pretrain", PretrainConfig)
    out_dir = Path(out_dir)
    if not cfg.enabled:
        Path(pool_dir).mkdir(parents=True, exist_ok=True)
        write_json({"enabled": False, "why": "pretrain.enabled is false"}, out_dir / SKIPPED)
        return None
    if cfg.towers.pairs != "clip":
        raise ParamsError(f"pretrain.towers.pairs is {cfg.towers.pairs!r}: the pool's labels are per clip, so it must be 'clip'")
    (out_dir / SKIPPED).unlink(missing_ok=True)
    pool = build_pool(cfg.pool, section(params, "synth", SynthConfig), section(params, "decode", DecodeConfig),
                      pool_dir, progress=progress)
    labels, splits = pool_labels(pool)
    seed_everything(cfg.towers.seed)  # the random init of the towers
    model = build_audioclip(value(params, "audioclip.profile", str), None)
    return finetune(model, SegmentCache.open(pool), labels, splits, cfg.towers, out_dir, progress=progress)
