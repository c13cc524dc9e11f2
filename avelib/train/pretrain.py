"""The `pretrain` stage: a pretrained start for the small random-init towers.

AVE-CLIP fine-tunes AudioCLIP towers that were pretrained on AudioSet with class names as text, and AVE
is cut from AudioSet (see avelib.models.label_tower). The `small` CPU profile has no such checkpoint,
so this stage makes one the same way: tri-modal training (audio-image + audio-name + image-name) on a
**separate pool** of SynthAVE videos, drawn with another seed from the same generator, as AudioSet is
the world AVE is drawn from. No video of the pool is a video of the dataset (other seed, other draws).

The pool is generated with the `synth` settings except its own size, split and seed, decoded with `decode`,
and trained by `avelib.train.contrastive.finetune` (the `towers` settings, `label_weight` > 0) on its
train split, the epoch kept by audio->image R@1 on its val split. The result, `<out_dir>/best.pt`, is
what `audioclip.checkpoint` points the fine-tuning stage at. With `enabled: false` (real AudioCLIP
weights) the stage only writes `<out_dir>/skipped.json`. Entry point: `avelib.stages.run_pretrain`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from avelib.data.cache import DecodeConfig, build_cache
from avelib.data.synth import SynthConfig, generate
from avelib.io import read_json, write_json
from avelib.params import resolved
from avelib.train.contrastive import FinetuneConfig

SKIPPED = "skipped.json"
POOL_RECORD = "pool.json"


@dataclass(frozen=True)
class PretrainConfig:
    """params.yaml section `pretrain` (design defaults of ours)."""

    enabled: bool = True
    """false: no pretraining (set `audioclip.checkpoint` to real AudioCLIP weights instead)."""
    pool_videos: int = 400
    """Videos in the pretraining pool."""
    pool_split_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    """Train / val / test shares of the pool (its test part is unused); independent of the dataset's split."""
    pool_seed: int = 1
    """Generator seed of the pool; must differ from `synth.seed` so no video repeats the dataset's."""
    towers: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(
        epochs=30, passes_per_epoch=1, lr=1e-3, logit_scale_init=14.285714, label_weight=1.0))
    """Training settings (the `finetune` keys); `seed` also seeds the random init of the towers."""


def pool_config(synth: SynthConfig, cfg: PretrainConfig) -> SynthConfig:
    """The SynthAVE settings of the pool: the dataset's, with the pool's size, split and seed."""
    if cfg.pool_seed == synth.seed:
        raise ValueError(f"pretrain.pool_seed ({cfg.pool_seed}) equals synth.seed: the pool would repeat the dataset's videos")
    return dataclasses.replace(synth, num_videos=cfg.pool_videos, split_fractions=cfg.pool_split_fractions,
                               seed=cfg.pool_seed)


def prepare_pool(synth: SynthConfig, decode: DecodeConfig, pool_dir: str | Path, progress: bool = True) -> tuple[Path, Path]:
    """Generate and decode the pool into `pool_dir/{synthave,cache}`, reusing both when
    `pool_dir/pool.json` says they were made with these settings (a resumed stage)."""
    pool_dir = Path(pool_dir)
    root, cache_dir = pool_dir / "synthave", pool_dir / "cache"
    record = {"synth": resolved(synth), "decode": resolved(decode)}
    made = pool_dir / POOL_RECORD
    if made.is_file() and read_json(made) == record and root.is_dir() and cache_dir.is_dir():
        return root, cache_dir
    made.unlink(missing_ok=True)  # the record is written last: its absence marks an unfinished pool
    generate(synth, root, progress=progress)
    build_cache(root, cache_dir, decode, progress=progress)
    write_json(record, made)
    return root, cache_dir
