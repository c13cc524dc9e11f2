"""How each SynthAVE class looks and sounds: its visual and audio signatures (see avelib.data.synth)
and the rendering of a planned video into frames and audio."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from avelib.data.ave import NUM_SEGMENTS


class RenderSettings(Protocol):
    """What rendering reads of `avelib.data.synth.SynthConfig`."""

    image_size: int
    fps: int
    sample_rate: int
    seed: int
    variation: float
    visual_noise: float
    audio_noise: float

VISUAL_GROUP = 4  # classes per visual group (same shape)
AUDIO_GROUPS = 7  # number of audio groups (same timbre)
SHAPES = ("disk", "square", "triangle", "plus", "ring", "diamond", "ellipse")
COLOURS = np.array([(230, 40, 40), (40, 200, 60), (50, 90, 240), (235, 215, 40)], dtype=np.float32)
TEXTURES = ("solid", "hstripes", "vstripes", "checker")
TIMBRES = ("sine", "square", "saw", "fm", "tremolo", "chirp", "noiseband")
PITCHES = (262.0, 440.0, 740.0, 1245.0)  # Hz, ~3/4 octave apart
RHYTHMS = (0.0, 3.0, 6.0, 1.5)  # pulses per second (0 = continuous)


# ---------------------------------------------------------------- class signatures
def visual_group(c: int) -> int:
    return c // VISUAL_GROUP


def visual_member(c: int) -> int:
    return c % VISUAL_GROUP


def audio_group(c: int) -> int:
    return c % AUDIO_GROUPS


def audio_member(c: int) -> int:
    return c // AUDIO_GROUPS


def signature(c: int) -> dict[str, str | float]:
    """Human-readable signatures of class c (for the data notebook)."""
    m, a = visual_member(c), audio_member(c)
    return {
        "shape": SHAPES[visual_group(c)],
        "colour": ("red", "green", "blue", "yellow")[m],
        "texture": TEXTURES[m],
        "timbre": TIMBRES[audio_group(c)],
        "pitch_hz": PITCHES[a],
        "rhythm_hz": RHYTHMS[a],
    }



# ---------------------------------------------------------------- rendering
def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a unit-radius shape in centred coordinates u, v ([H,W] each)."""
    if shape == "disk":
        return u**2 + v**2 <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85
    if shape == "triangle":
        return (v <= 0.8) & (v >= -0.95) & (np.abs(u) <= (v + 0.95) / 1.75)
    if shape == "plus":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    if shape == "ring":
        r2 = u**2 + v**2
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "ellipse":
        return u**2 + (v / 0.45) ** 2 <= 1.0
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, yy: np.ndarray, xx: np.ndarray, period: float) -> np.ndarray:
    """1 on the light part of the texture, 0 on the dark part ([H,W] float)."""
    if texture == "solid":
        return np.ones_like(xx)
    if texture == "hstripes":
        return ((yy // (period / 2)) % 2 == 0).astype(np.float32)
    if texture == "vstripes":
        return ((xx // (period / 2)) % 2 == 0).astype(np.float32)
    if texture == "checker":
        return (((yy // (period / 2)) + (xx // (period / 2))) % 2 == 0).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


@dataclass(frozen=True)
class _Sprite:
    shape: str
    colour: np.ndarray  # [3] float
    texture: str
    period: float  # texture period in px
    radius: float  # px
    path: tuple[float, float, float, float, float, float]  # cx, cy, vx, vy (px/s), wobble amp, wobble freq


def _make_sprite(cfg: RenderSettings, rng: np.random.Generator, c: int, member: int) -> _Sprite:
    s, var = cfg.image_size, cfg.variation
    radius = s * 0.22 * (1.0 + var * rng.uniform(-0.25, 0.25))
    colour = np.clip(COLOURS[member] + var * rng.uniform(-30, 30, size=3), 0, 255)
    period = max(4.0, radius / 2.2) * (1.0 + var * rng.uniform(-0.2, 0.2))
    margin = radius + 2
    cx, cy = rng.uniform(margin, s - margin, size=2)
    vx, vy = rng.uniform(-1, 1, size=2) * s * 0.08  # slow drift, bounced at the borders
    return _Sprite(SHAPES[visual_group(c)], colour, TEXTURES[member], period, radius,
                   (cx, cy, vx, vy, rng.uniform(0, 0.06) * s, rng.uniform(0.3, 1.5)))


def _bounce(x: float, lo: float, hi: float) -> float:
    span = hi - lo
    y = (x - lo) % (2 * span)
    return lo + (y if y <= span else 2 * span - y)


def render_frames(cfg: RenderSettings, plan: dict[str, Any], index: int) -> np.ndarray:
    """uint8 [10*fps, S, S, 3] frames of one planned video."""
    rng = np.random.default_rng([cfg.seed, index, 2])
    s, fps = cfg.image_size, cfg.fps
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)  # [S,S]
    # low-saturation background: grey level + small tint + a gradient in a random direction
    base = rng.uniform(70, 160) + rng.uniform(-12, 12, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    grad = ((xx - s / 2) * np.cos(angle) + (yy - s / 2) * np.sin(angle)) / s * rng.uniform(10, 40)
    background = np.clip(base[None, None, :] + grad[..., None], 0, 255).astype(np.float32)  # [S,S,3]
    sprites = {int(c): _make_sprite(cfg, rng, int(c), m) for c, m in sorted(plan["shown_member"].items())}
    n = NUM_SEGMENTS * fps
    frames = np.empty((n, s, s, 3), dtype=np.uint8)  # [T*fps,S,S,3]
    for f in range(n):
        t = f / fps
        img = background.copy()
        c = plan["visual"][int(t)]
        if c >= 0:
            sp = sprites[c]
            cx0, cy0, vx, vy, amp, freq = sp.path
            m = sp.radius + 1
            cx = _bounce(cx0 + vx * t + amp * np.sin(2 * np.pi * freq * t), m, s - m)
            cy = _bounce(cy0 + vy * t + amp * np.cos(2 * np.pi * freq * t), m, s - m)
            mask = _shape_mask(sp.shape, (xx - cx) / sp.radius, (yy - cy) / sp.radius)
            light = _texture(sp.texture, yy - cy, xx - cx, sp.period)
            col = sp.colour[None, None, :] * (0.4 + 0.6 * light[..., None])  # dark part = 40% brightness
            img = np.where(mask[..., None], col, img)
        img += rng.normal(0, cfg.visual_noise, size=img.shape).astype(np.float32)
        frames[f] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def _tone(timbre: str, f0: float, t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One timbre at pitch f0 over times t: float [n], roughly unit RMS before normalisation."""
    phase = 2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)
    nyq = sr / 2 * 0.9
    if timbre == "sine":
        return np.sin(phase)
    if timbre in ("square", "saw"):
        ks = range(1, 16, 2) if timbre == "square" else range(1, 9)
        return sum(np.sin(k * phase) / k for k in ks if k * f0 < nyq)
    if timbre == "fm":
        return np.sin(phase + 2.5 * np.sin(1.41 * phase))
    if timbre == "tremolo":
        return np.sin(phase) * (0.55 + 0.45 * np.sin(2 * np.pi * 23.0 * t))
    if timbre == "chirp":
        cyc = (t * 4.0) % 1.0  # 4 upward sweeps per second, f0 -> 1.6 f0
        inst = f0 * (1.0 + 0.6 * cyc)
        return np.sin(2 * np.pi * np.cumsum(inst) / sr)
    if timbre == "noiseband":
        noise = rng.normal(size=t.shape[0])
        spec = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(t.shape[0], 1 / sr)
        spec[np.abs(freqs - f0) > 0.15 * f0] = 0
        return np.fft.irfft(spec, n=t.shape[0])
    raise ValueError(f"unknown timbre {timbre!r}")


def _source(cfg: RenderSettings, rng: np.random.Generator, c: int, member: int) -> np.ndarray:
    """10 s of the sound of class c played with audio member `member`: float [10*R]."""
    sr, var = cfg.sample_rate, cfg.variation
    t = np.arange(NUM_SEGMENTS * sr) / sr
    f0 = PITCHES[member] * 2 ** (var * rng.normal(0, 0.06))  # about +-1 semitone at variation 1
    wave = _tone(TIMBRES[audio_group(c)], f0, t, sr, rng)
    rate = RHYTHMS[member] * (1.0 + var * rng.uniform(-0.15, 0.15))
    if rate > 0:  # pulses with a 60% duty cycle and soft edges
        gate = np.clip((0.6 - ((t * rate + rng.uniform()) % 1.0)) * 20.0, 0.0, 1.0)
        wave = wave * gate
    rms = np.sqrt(np.mean(wave**2)) + 1e-8
    return wave / rms * 0.2 * (1.0 + var * rng.uniform(-0.3, 0.3))


def _activity(active: list[bool], sr: int) -> np.ndarray:
    """Envelope [10*R]: 1 on active seconds, 0 elsewhere, with 10-ms ramps at the edges."""
    env = np.repeat(np.asarray(active, dtype=np.float64), sr)
    ramp = max(1, sr // 100)
    kernel = np.ones(ramp) / ramp
    return np.convolve(env, kernel, mode="same")


def render_audio(cfg: RenderSettings, plan: dict[str, Any], index: int) -> np.ndarray:
    """float32 [10*R] mono audio of one planned video, in [-1, 1]."""
    rng = np.random.default_rng([cfg.seed, index, 3])
    sr = cfg.sample_rate
    out = rng.normal(0, cfg.audio_noise, size=NUM_SEGMENTS * sr)
    for c_str, member in sorted(plan["played_member"].items()):
        c = int(c_str)
        active = [a == c for a in plan["audio"]]
        if any(active):
            out = out + _source(cfg, rng, c, member) * _activity(active, sr)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
