"""The pretraining pool: clips shaped like AudioSet, the data AudioCLIP was pretrained on, in miniature.

AudioCLIP's towers met AVE's classes while pretraining on AudioSet, whose clips differ from AVE's in kind:
AVE is a curated subset where the event is audible and visible in annotated seconds. Stage A exists to
adapt across that gap, so the pool mirrors AudioSet, not AVE; each choice by what it stands for:

- **A wider vocabulary** (`classes`): AudioSet names 527 classes, AVE's 28 among them. A pool class pairs
  the look of one SynthAVE class with the sound of another; the 28 AVE classes (look and sound of the
  same class) come first, the others are drawn once from the 756 other pairs by the pool seed.
- **Clip-level labels, no alignment in seconds**: an AudioSet label says that a sound occurs somewhere in
  the 10-s clip, not when, nor whether its source is on screen. The object is visible in one span and
  its sound audible in another, drawn independently (lengths from AVE's distribution); training pairs an
  audio second with a frame of any second (`finetune.pairs: clip`), and every second carries the clip's class.
- **Other recording conditions**: framing (a zoom per clip drawn from `zoom`: the frame is cropped from a
  larger rendering, so objects are bigger and may be cut), noise (per clip, the dataset's levels times a
  factor drawn from `noise_scale`), and a second sound source (probability `second_sound`: another
  class's sound in a span of its own, where the labelled sound is silent).
- Written straight into the segment-cache layout (avelib.data.cache), uncompressed: the pool tests no decoder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from avelib.data.ave import CATEGORIES, NUM_SEGMENTS
from avelib.data.cache import DecodeConfig
from avelib.data.synth import SynthConfig, sample_event
from avelib.data.synth_render import audio_member, render_audio, render_frames, visual_member
from avelib.io import atomic_path, read_json, write_json
from avelib.params import resolved
from avelib.runtime import pool_context

POOL_FILE = "pool.json"  # beside the cache files: the classes, splits and plans of the clips


@dataclass(frozen=True)
class PoolConfig:
    """params.yaml section `pretrain.pool` (design defaults of ours; the module docstring says what each mirrors)."""

    videos: int = 1000
    """Clips in the pool."""
    split_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    """Train / val / test shares (the test part is unused)."""
    seed: int = 1
    """Seed of the pool; must differ from `synth.seed`, so no clip repeats a draw of the dataset."""
    classes: int = 112
    """Pool classes: the 28 AVE classes and `classes - 28` look-of-one, sound-of-another pairs (28..784)."""
    zoom: tuple[float, float] = (1.0, 1.6)
    """Range of the per-clip zoom: the frame is a random crop of a rendering this much larger."""
    noise_scale: tuple[float, float] = (0.5, 2.0)
    """Range of the per-clip factors on `synth.visual_noise` and `synth.audio_noise`."""
    second_sound: float = 0.5
    """Probability that a clip also plays another class's sound, in a span of its own."""


def class_pairs(cfg: PoolConfig) -> np.ndarray:
    """int64 [classes, 2]: the (look, sound) SynthAVE class of each pool class; row c < 28 is AVE class c."""
    n = len(CATEGORIES)
    if not n <= cfg.classes <= n * n:
        raise ValueError(f"pretrain.pool.classes: {cfg.classes} must lie in [{n}, {n * n}]")
    others = np.array([(look, sound) for look in range(n) for sound in range(n) if look != sound])  # [756,2]
    drawn = others[np.random.default_rng([cfg.seed, 0, 7]).permutation(len(others))[: cfg.classes - n]]
    return np.concatenate([np.repeat(np.arange(n)[:, None], 2, axis=1), drawn]).astype(np.int64)


def clip_classes_and_splits(cfg: PoolConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Pool class of each clip (as balanced as the size allows, shuffled) and the split indices."""
    fractions = cfg.split_fractions
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6 or cfg.videos < 1:
        raise ValueError(f"pretrain.pool: videos {cfg.videos} >= 1 and 3 split fractions summing to 1, got {fractions}")
    rng = np.random.default_rng([cfg.seed, 0])
    classes = rng.permutation(np.arange(cfg.videos) % cfg.classes)  # [N]
    order = rng.permutation(cfg.videos)
    n_train, n_val = round(cfg.videos * fractions[0]), round(cfg.videos * fractions[1])
    cuts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return classes.astype(np.int64), {name: np.sort(rows) for name, rows in cuts.items()}


def plan_clip(cfg: PoolConfig, index: int, look: int, sound: int) -> dict[str, Any]:
    """One clip: who is visible and audible in each second (-1: nobody), its zoom and noise factors."""
    rng = np.random.default_rng([cfg.seed, index, 1])
    seen, heard = sample_event(rng), sample_event(rng)  # independent spans
    visual = [look if seen[0] <= t < seen[1] else -1 for t in range(NUM_SEGMENTS)]
    audio = [sound if heard[0] <= t < heard[1] else -1 for t in range(NUM_SEGMENTS)]
    played = {str(sound): audio_member(sound)}
    if rng.random() < cfg.second_sound:
        other = int((sound + rng.integers(1, len(CATEGORIES))) % len(CATEGORIES))
        span = sample_event(rng)
        audio = [other if a < 0 and span[0] <= t < span[1] else a for t, a in enumerate(audio)]
        played[str(other)] = audio_member(other)
    return {"visual": visual, "audio": audio, "shown_member": {str(look): visual_member(look)},
            "played_member": played, "zoom": float(rng.uniform(*cfg.zoom)),
            "visual_noise_scale": float(rng.uniform(*cfg.noise_scale)),
            "audio_noise_scale": float(rng.uniform(*cfg.noise_scale))}


def render_clip(cfg: PoolConfig, synth: SynthConfig, decode: DecodeConfig, index: int,
                plan: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """frames uint8 [10,K,S,S,3] and audio float32 [10,R] of one planned clip, in the cache's format."""
    s, k, r = decode.image_size, decode.frames_per_second, decode.sample_rate
    look = replace(synth, image_size=2 * round(s * plan["zoom"] / 2), fps=k, sample_rate=r, seed=cfg.seed,
                   visual_noise=synth.visual_noise * plan["visual_noise_scale"],
                   audio_noise=synth.audio_noise * plan["audio_noise_scale"])  # this clip's render settings
    big = render_frames(look, plan, index)  # [10*K,S',S',3]
    y, x = np.random.default_rng([cfg.seed, index, 4]).integers(0, look.image_size - s + 1, size=2)
    frames = big[:, y : y + s, x : x + s].reshape(NUM_SEGMENTS, k, s, s, 3)
    return frames, render_audio(look, plan, index).reshape(NUM_SEGMENTS, r)


def _clip_job(args: tuple[PoolConfig, SynthConfig, DecodeConfig, int, dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    return render_clip(*args)


def build_pool(cfg: PoolConfig, synth: SynthConfig, decode: DecodeConfig, out_dir: str | Path,
               progress: bool = True) -> Path:
    """Write the pool to `out_dir` as a segment cache (frames.npy, audio.npy, meta.json) plus pool.json,
    atomically; a pool already written with these settings is kept."""
    if cfg.seed == synth.seed:
        raise ValueError(f"pretrain.pool.seed ({cfg.seed}) equals synth.seed: the pool would repeat the dataset's draws")
    if not (1.0 <= cfg.zoom[0] <= cfg.zoom[1] and 0.0 <= cfg.noise_scale[0] <= cfg.noise_scale[1]
            and 0.0 <= cfg.second_sound <= 1.0):
        raise ValueError(f"pretrain.pool: zoom must be a range >= 1, noise_scale a range >= 0 and second_sound in [0, 1]; "
                         f"got {cfg.zoom}, {cfg.noise_scale}, {cfg.second_sound}")
    out_dir = Path(out_dir)
    record = {"pool": resolved(cfg), "synth": resolved(replace(synth, workers=1)), "decode": resolved(decode)}
    if (out_dir / POOL_FILE).is_file() and read_json(out_dir / POOL_FILE)["record"] == record:
        return out_dir
    pairs = class_pairs(cfg)
    classes, splits = clip_classes_and_splits(cfg)
    plans = [plan_clip(cfg, i, *map(int, pairs[c])) for i, c in enumerate(classes)]
    n, k, s, r = cfg.videos, decode.frames_per_second, decode.image_size, decode.sample_rate
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        frames = np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=np.uint8, shape=(n, NUM_SEGMENTS, k, s, s, 3))
        audio = np.lib.format.open_memmap(tmp / "audio.npy", mode="w+", dtype=np.float32, shape=(n, NUM_SEGMENTS, r))
        jobs = [(cfg, synth, decode, i, plan) for i, plan in enumerate(plans)]
        with pool_context().Pool(max(1, synth.workers)) as workers:
            rendered = workers.imap(_clip_job, jobs, chunksize=4)
            for i, (fr, au) in enumerate(tqdm(rendered, total=n, desc="pool", unit="clip", disable=None if progress else True)):
                frames[i], audio[i] = fr, au
        frames.flush()
        audio.flush()
        del frames, audio
        ids = [f"pool{i:07d}" for i in range(n)]
        write_json({"video_ids": ids, "ok": [True] * n, "frames_per_second": k, "image_size": s, "sample_rate": r,
                    "dataset_root": None, "config": resolved(decode)}, tmp / "meta.json")
        write_json({"record": record, "class_pairs": pairs.tolist(), "classes": classes.tolist(),
                    "splits": {name: rows.tolist() for name, rows in splits.items()}, "clips": plans}, tmp / POOL_FILE)
    return out_dir


def pool_labels(out_dir: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clip-level labels int64 [N,10] (every second carries its clip's class) and the splits of a built pool."""
    pool = read_json(Path(out_dir) / POOL_FILE)
    classes = np.asarray(pool["classes"], dtype=np.int64)  # [N]
    return np.repeat(classes[:, None], NUM_SEGMENTS, axis=1), {k: np.asarray(v, dtype=np.int64) for k, v in pool["splits"].items()}
