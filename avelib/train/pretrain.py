"""The `pretrain` stage: a pretrained start for the small random-init towers.

AVE-CLIP fine-tunes AudioCLIP towers that were pretrained on AudioSet with class names as text, and AVE
is cut from AudioSet (see avelib.models.label_tower). The `small` CPU profile has no such checkpoint,
so this stage makes one the same way: tri-modal training (audio-image + audio-name + image-name) on a
**pool shaped like AudioSet** (avelib.data.pool): clip-level labels over a wider class set with AVE's
28 among them, no alignment in seconds, other framing, noise and mixing than the dataset's.

The pool is trained by `avelib.train.contrastive.finetune` (the `towers` settings: clip-level pairs,
`label_weight` > 0) on its train split, the epoch kept by audio->image R@1 on its val split (a hit: a
frame of the query's own clip). The result, `<out_dir>/best.pt`, is what `audioclip.checkpoint` points
the fine-tuning stage at. With `enabled: false` (real AudioCLIP weights) the stage only writes
`<out_dir>/skipped.json`. Entry point: `avelib.stages.run_pretrain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from avelib.data.pool import PoolConfig
from avelib.train.contrastive import FinetuneConfig

SKIPPED = "skipped.json"


@dataclass(frozen=True)
class PretrainConfig:
    """params.yaml section `pretrain` (design defaults of ours)."""

    enabled: bool = True
    """false: no pretraining (set `audioclip.checkpoint` to real AudioCLIP weights instead)."""
    pool: PoolConfig = field(default_factory=PoolConfig)
    """The AudioSet-like pool (avelib.data.pool)."""
    towers: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(
        epochs=10, passes_per_epoch=1, pairs="clip", lr=1e-3, logit_scale_init=14.285714, label_weight=1.0))
    """Training settings (the `finetune` keys); `seed` also seeds the random init of the towers."""
