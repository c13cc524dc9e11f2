"""SynthAVE: a seeded synthetic dataset in the exact AVE layout.

Each of the 28 AVE categories gets a visual signature (shape x colour/texture) and an audio
signature (timbre x pitch/rhythm). The signatures are built so that each modality alone is
honestly ambiguous while the pair is not:

- visual: shape = visual group (c // 4, 7 groups); colour + texture = member (c % 4).
- audio: timbre = audio group (c % 7, 7 groups); pitch + rhythm = member (c // 7).
  A visual group and an audio group share at most one class, so (shape, timbre) alone names
  the class. With probability `visual_ambiguity` (`audio_ambiguity`) a video shows (plays) the
  member attributes of another class of the same group: that modality alone then points at a
  wrong class, the pair still points at the right one.
- an event second shows the class object AND plays its sound; a background second is plain,
  or (with probability `distractor_fraction`) a one-modality distractor: an object that is
  visible but silent, or a sound whose source is off screen, of the video's own class or
  (probability `distractor_other_class`) of another class.

Event lengths follow the AVE length distribution (spec/ave-dataset.md), start uniform.
Ground truth per second is written to `<root>/synth_meta.json` beside the AVE files. The signatures
and the rendering of frames and audio are in avelib.data.synth_render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm.auto import tqdm

from avelib.data.ave import BACKGROUND, CATEGORIES, HEADER, NUM_SEGMENTS, SPLIT_FILES
from avelib.data.synth_render import (
    AUDIO_GROUPS,
    VISUAL_GROUP,
    audio_member,
    render_audio,
    render_frames,
    signature,
    visual_member,
)
from avelib.io import atomic_path, write_json
from avelib.params import resolved
from avelib.runtime import pool_context

NUM_CATEGORIES = len(CATEGORIES)
META_FILE = "synth_meta.json"

# AVE event-length distribution over the 4,143 real samples (seconds -> count)
AVE_LENGTH_COUNTS: dict[int, int] = {10: 2750, 9: 95, 8: 111, 7: 139, 6: 200, 5: 196, 4: 217, 3: 220, 2: 214, 0: 1}


# x264 settings that make the bitstream a function of the frames alone:
# - threads=1: x264's output depends on its thread count (auto = a function of the CPU count).
# - no-asm: with its run-time-selected SIMD (AVX-512 on CPUs that have it), x264 reads heap memory
#   it never wrote (in the lookahead: turning off mb-tree, AQ or B-frames also hides it), so the
#   encode, and the decoded pixels, depend on what the process allocated before (other tests,
#   torch, being a forked pool worker or not). The portable C code is exact; it makes encoding
#   ~4x slower (~0.1 s per 64x64, 8 fps video).
X264_OPTIONS: dict[str, str] = {"preset": "veryfast", "threads": "1", "x264-params": "no-asm=1"}

KIND_EVENT, KIND_VISUAL_ONLY, KIND_AUDIO_ONLY, KIND_PLAIN = "event", "visual_only", "audio_only", "plain"


@dataclass(frozen=True)
class SynthConfig:
    """params.yaml section `synth`: size, media format and difficulty of SynthAVE."""

    num_videos: int = 600  # number of 10-s samples
    split_fractions: tuple[float, ...] = (0.4, 0.1, 0.5)  # train/val/test fractions
    image_size: int = 64  # frame width = height in pixels (even)
    fps: int = 8  # video frame rate
    sample_rate: int = 16000  # audio sample rate (Hz), mono AAC
    seed: int = 0  # generator seed: same seed -> same dataset
    workers: int = 2  # processes encoding videos (1 = in-process)
    crf: int = 18  # x264 constant rate factor (lower = better quality)
    visual_noise: float = 6.0  # std of per-pixel Gaussian noise (0..255 scale)
    audio_noise: float = 0.02  # std of background white noise (full scale 1.0)
    variation: float = 0.3  # within-class variation 0..1 (size, colour, pitch, loudness jitter)
    visual_ambiguity: float = 0.15  # P(video shows colour/texture of another class of its shape group)
    audio_ambiguity: float = 0.15  # P(video plays pitch/rhythm of another class of its timbre group)
    distractor_fraction: float = 0.6  # P(background second holds a one-modality distractor)
    distractor_other_class: float = 0.5  # P(a video's distractor is of another class, else its own)


def check_config(cfg: SynthConfig) -> None:
    """Raise ValueError on values the generator cannot honour."""
    probs = ("variation", "visual_ambiguity", "audio_ambiguity", "distractor_fraction", "distractor_other_class")
    for name in probs:
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"synth.{name}: {v} is not in [0, 1]")
    if len(cfg.split_fractions) != 3 or any(f < 0 for f in cfg.split_fractions) or abs(sum(cfg.split_fractions) - 1) > 1e-6:
        raise ValueError(f"synth.split_fractions: {cfg.split_fractions} must be 3 non-negative numbers summing to 1")
    if cfg.num_videos < 1 or cfg.image_size < 16 or cfg.image_size % 2 or cfg.fps < 1 or cfg.sample_rate < 8000:
        raise ValueError(f"synth: bad size/format values in {cfg}")
    if cfg.workers < 1:
        raise ValueError(f"synth.workers: {cfg.workers} must be >= 1")


# ---------------------------------------------------------------- planning


def sample_event(rng: np.random.Generator) -> tuple[int, int]:
    """(start, end) of one event: length from the AVE distribution, start uniform."""
    lengths = np.array(sorted(AVE_LENGTH_COUNTS))
    p = np.array([AVE_LENGTH_COUNTS[k] for k in lengths], dtype=np.float64)
    length = int(rng.choice(lengths, p=p / p.sum()))
    start = int(rng.integers(0, NUM_SEGMENTS - length + 1))
    return start, start + length


def _other_member(rng: np.random.Generator, member: int, n: int) -> int:
    return int((member + rng.integers(1, n)) % n)


def plan_video(cfg: SynthConfig, index: int, label: int) -> dict[str, Any]:
    """Ground truth of one video: event span, per-second visible / audible class and kind."""
    rng = np.random.default_rng([cfg.seed, index, 1])
    start, end = sample_event(rng)
    if rng.random() < cfg.distractor_other_class:
        distractor = int((label + rng.integers(1, NUM_CATEGORIES)) % NUM_CATEGORIES)
    else:
        distractor = label
    visual, audio, kinds = [-1] * NUM_SEGMENTS, [-1] * NUM_SEGMENTS, [KIND_PLAIN] * NUM_SEGMENTS
    for t in range(NUM_SEGMENTS):
        if start <= t < end:
            visual[t], audio[t], kinds[t] = label, label, KIND_EVENT
        elif rng.random() < cfg.distractor_fraction:
            if rng.random() < 0.5:
                visual[t], kinds[t] = distractor, KIND_VISUAL_ONLY
            else:
                audio[t], kinds[t] = distractor, KIND_AUDIO_ONLY
    # member attributes shown / played per class present (ambiguity swaps them within the group)
    shown_member: dict[int, int] = {}
    played_member: dict[int, int] = {}
    for c in sorted({label, distractor}):
        vm, am = visual_member(c), audio_member(c)
        shown_member[c] = _other_member(rng, vm, VISUAL_GROUP) if rng.random() < cfg.visual_ambiguity else vm
        played_member[c] = _other_member(rng, am, NUM_CATEGORIES // AUDIO_GROUPS) if rng.random() < cfg.audio_ambiguity else am
    return {
        "label": label,
        "start": start,
        "end": end,
        "distractor_class": distractor,
        "visual": visual,
        "audio": audio,
        "kinds": kinds,
        "segment_labels": [label if k == KIND_EVENT else BACKGROUND for k in kinds],
        "shown_member": {str(c): m for c, m in shown_member.items()},
        "played_member": {str(c): m for c, m in played_member.items()},
    }


# ---------------------------------------------------------------- encoding and the dataset


def write_video(
    path: Path,
    frames: np.ndarray,
    audio: np.ndarray,
    fps: int | Fraction,
    sample_rate: int,
    crf: int,
    size: tuple[int, int] | None = None,
    preset: str = "veryfast",
) -> None:
    """Mux frames uint8 [N,H,W,3] (H.264) and audio float32 [n] mono or [C,n] (AAC) into an mp4.

    size=(width, height) rescales every frame (bicubic) on the way in, e.g. to a non-square format;
    `preset` is x264's speed/size trade-off.
    """
    audio = audio[None] if audio.ndim == 1 else audio  # [C,n]
    width, height = size or (frames.shape[2], frames.shape[1])
    layout = {1: "mono", 2: "stereo"}[audio.shape[0]]
    with av.open(str(path), mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv420p"
        vs.options = X264_OPTIONS | {"crf": str(crf), "preset": preset}
        aus = out.add_stream("aac", rate=sample_rate, layout=layout)
        aus.bit_rate = 64000 * audio.shape[0]
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            if size is not None:
                vf = vf.reformat(width=width, height=height, interpolation="BICUBIC")
            vf.pts = i
            vf.time_base = 1 / Fraction(fps)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        chunk = 1024
        planar = np.ascontiguousarray(audio, dtype=np.float32)
        for i in range(0, planar.shape[1], chunk):
            af = av.AudioFrame.from_ndarray(planar[:, i : i + chunk], format="fltp", layout=layout)
            af.sample_rate = sample_rate
            af.pts = i
            af.time_base = Fraction(1, sample_rate)
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))


def video_id(index: int) -> str:
    """An 11-character id like AVE's YouTube ids."""
    return f"syn{index:08d}"


def _make_one(args: tuple[SynthConfig, int, int, str]) -> dict[str, Any]:
    cfg, index, label, out_dir = args
    plan = plan_video(cfg, index, label)
    frames = render_frames(cfg, plan, index)
    audio = render_audio(cfg, plan, index)
    write_video(Path(out_dir) / f"{video_id(index)}.mp4", frames, audio, cfg.fps, cfg.sample_rate, cfg.crf)
    return {"video_id": video_id(index), **plan}


def assign_labels_and_splits(cfg: SynthConfig) -> tuple[list[int], dict[str, list[int]]]:
    """Class of each video (balanced, shuffled) and split indices (shuffled order).

    Splits are stratified: videos are dealt class by class in rounds (one of each class per
    round, in a shuffled order), test and val take the first rounds, so small val/test
    splits still cover as many classes as their size allows.
    """
    rng = np.random.default_rng([cfg.seed, 0])
    n = cfg.num_videos
    labels = [int(x) for x in rng.permutation(np.arange(n) % NUM_CATEGORIES)]
    perm = rng.permutation(n)
    rank = np.zeros(n, dtype=np.int64)  # position of each video among its class (random)
    seen = np.zeros(NUM_CATEGORIES, dtype=np.int64)
    for i in perm:
        rank[i], seen[labels[i]] = seen[labels[i]], seen[labels[i]] + 1
    class_order = rng.permutation(NUM_CATEGORIES)
    dealt = sorted(range(n), key=lambda i: (rank[i], class_order[labels[i]]))
    n_train = int(round(n * cfg.split_fractions[0]))
    n_val = int(round(n * cfg.split_fractions[1]))
    n_test = n - n_train - n_val
    parts = {"test": dealt[:n_test], "val": dealt[n_test : n_test + n_val], "train": dealt[n_test + n_val :]}
    return labels, {name: [int(i) for i in rng.permutation(parts[name])] for name in ("train", "val", "test")}


def distractor_stats(videos: list[dict[str, Any]], indices: list[int]) -> dict[str, float]:
    """Counts of background seconds by kind, and the one-modality distractor fraction."""
    kinds = [k for i in indices for k in videos[i]["kinds"] if k != KIND_EVENT]
    n = len(kinds)
    vis, aud = kinds.count(KIND_VISUAL_ONLY), kinds.count(KIND_AUDIO_ONLY)
    return {
        "background_seconds": n,
        "visual_only": vis,
        "audio_only": aud,
        "plain": kinds.count(KIND_PLAIN),
        "distractor_fraction": (vis + aud) / n if n else 0.0,
    }


def is_generated(cfg: SynthConfig, root: Path) -> bool:
    """`root` holds every video of SynthAVE written with `cfg` (the worker count does not change a byte)."""
    meta_path = root / META_FILE
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    same = {k: v for k, v in meta["config"].items() if k != "workers"} == {
        k: v for k, v in resolved(cfg).items() if k != "workers"
    }
    return same and all((root / "AVE" / f"{v['video_id']}.mp4").is_file() for v in meta["videos"])


def generate(cfg: SynthConfig, root: str | Path, progress: bool = True) -> Path:
    """Write SynthAVE to `root` (AVE layout + synth_meta.json), atomically; return root."""
    check_config(cfg)
    root = Path(root)
    if is_generated(cfg, root):
        print(f"{root}: SynthAVE of these synth params is already complete; kept")
        return root
    labels, splits = assign_labels_and_splits(cfg)
    with atomic_path(root) as tmp:
        (tmp / "AVE").mkdir(parents=True)
        jobs = [(cfg, i, labels[i], str(tmp / "AVE")) for i in range(cfg.num_videos)]
        bar = dict(total=len(jobs), desc="SynthAVE", unit="video", disable=None if progress else True)
        if cfg.workers == 1:
            videos = [_make_one(j) for j in tqdm(jobs, **bar)]
        else:
            with pool_context().Pool(cfg.workers) as pool:
                videos = list(tqdm(pool.imap(_make_one, jobs, chunksize=4), **bar))
        lines = [f"{CATEGORIES[v['label']]}&{v['video_id']}&good&{v['start']}&{v['end']}" for v in videos]
        (tmp / "Annotations.txt").write_text("\n".join([HEADER, *lines]) + "\n")
        for name, fname in SPLIT_FILES.items():
            (tmp / fname).write_text("".join(lines[i] + "\n" for i in splits[name]))
        meta = {
            "config": resolved(cfg),
            "signatures": [signature(c) for c in range(NUM_CATEGORIES)],
            "split_stats": {name: distractor_stats(videos, idx) for name, idx in splits.items()},
            "videos": videos,
        }
        write_json(meta, tmp / META_FILE)
    return root

