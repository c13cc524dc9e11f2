"""AudioCLIP image + audio towers, checkpoint loading/saving and input preprocessing.

The towers compute what the official AudioCLIP code computes in eval mode (checked numerically by
tests/test_conformance.py against ../shared/conformance/audioclip/). The text tower is not built:
its checkpoint keys are accepted and ignored.

Checkpoints accepted by `AudioCLIP.from_checkpoint`:
- official `AudioCLIP-Full-Training.pt` / `AudioCLIP-Partial-Training.pt` (one state_dict);
- the pair `CLIP.pt` + `ESRNXFBSP.pt` (audio keys without the `audio.` prefix). ESRNXFBSP.pt ends
  in a 527-way AudioSet classifier, not a projection into CLIP's space, so in this route only the
  audio trunk (front end, ResNeXt, attention gates) is loaded; `audio.fc` and `logit_scale_ai`
  keep their fresh initialization (as in the official code, which starts its AudioCLIP training
  from this pair) and a warning says so: they must be trained (stage A) before use;
- our own files written by `save_checkpoint` (config + state_dict + extra).
Unlike the official loader (strict=False, silent), a missing key of either tower, an unknown
key or a shape mismatch raises `CheckpointError` naming the file and the keys.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avelib.data.media import resize_crop
from avelib.io import atomic_path
from avelib.models.clip_resnet import ImageTowerConfig, ModifiedResNet
from avelib.models.esresnext import AudioTowerConfig, ESResNeXtFBSP

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INT16_SCALE = 32768.0  # the audio tower expects int16-range amplitudes
CHECKPOINT_FORMAT = "avelib.audioclip/1"

# text-tower keys of the official checkpoints: accepted, not used
_TEXT_PREFIXES = ("transformer.", "token_embedding.", "ln_final.")
_TEXT_KEYS = frozenset({"positional_embedding", "text_projection", "logit_scale", "logit_scale_at"})
# a deterministic buffer: recomputed from its formula when a checkpoint lacks it
_COMPUTED_KEYS = frozenset({"audio.window"})
# the official FBSP layer stores its disabled bias as an empty tensor
_EMPTY_PLACEHOLDERS = frozenset({"audio.fbsp.bias"})


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model (missing/unknown keys, wrong shapes, bad format)."""


@dataclass(frozen=True)
class AudioCLIPConfig:
    """Architecture of both towers. `paper` = official AudioCLIP sizes; `small` = CPU profile."""

    name: str = "paper"  # profile name, informative
    image_size: int = 224  # square image side fed to the image tower (multiple of 32)
    sample_rate: int = 44100  # audio rate the tower is built for (sets the FBSP framing)
    embed_dim: int = 1024  # joint embedding size of both towers
    vision_layers: tuple[int, int, int, int] = (3, 4, 6, 3)  # CLIP ResNet bottlenecks per stage
    vision_width: int = 64  # CLIP ResNet stem width (features = 32 x width, heads = width / 2)
    audio_layers: tuple[int, int, int, int] = (3, 4, 6, 3)  # ResNeXt bottlenecks per stage
    audio_width: int = 64  # ResNeXt stem width (features = 32 x width)
    audio_groups: int = 32  # ResNeXt cardinality
    audio_width_per_group: int = 4  # ResNeXt group width (32x4d)
    win_length: int = 1654  # FBSP frame length in samples (37.5 ms at 44.1 kHz)
    hop_length: int = 561  # FBSP hop in samples (12.7 ms at 44.1 kHz)
    n_fft: int = 2048  # FBSP input length (frames zero-padded to it)

    def image_tower(self) -> ImageTowerConfig:
        return ImageTowerConfig(self.image_size, tuple(self.vision_layers), self.vision_width, self.embed_dim)

    def audio_tower(self) -> AudioTowerConfig:
        return AudioTowerConfig(
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            layers=tuple(self.audio_layers),
            width=self.audio_width,
            groups=self.audio_groups,
            width_per_group=self.audio_width_per_group,
            out_dim=self.embed_dim,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "config") -> "AudioCLIPConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CheckpointError(f"{where}: unknown AudioCLIPConfig field(s) {unknown}")
        vals = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**vals)


def _scaled(samples_at_44k: int, rate: int) -> int:
    return int(round(samples_at_44k * rate / 44100))


def profile_config(name: Literal["paper", "small"]) -> AudioCLIPConfig:
    """`paper`: the official AudioCLIP sizes. `small`: same architecture family and code path,
    fewer channels/blocks, 64 px images, 16 kHz audio with the FBSP framing scaled to that rate."""
    if name == "paper":
        return AudioCLIPConfig()
    if name == "small":
        rate = 16000
        n_fft = _scaled(2048, rate)
        return AudioCLIPConfig(
            name="small",
            image_size=64,
            sample_rate=rate,
            embed_dim=128,
            vision_layers=(1, 1, 1, 1),
            vision_width=16,
            audio_layers=(1, 1, 1, 1),
            audio_width=16,
            audio_groups=8,
            audio_width_per_group=8,
            win_length=_scaled(1654, rate),  # 600
            hop_length=_scaled(561, rate),  # 204
            n_fft=n_fft + n_fft % 2,  # 744: even, so the bins split like the official 2048
        )
    raise ValueError(f"unknown AudioCLIP profile {name!r}; expected 'paper' or 'small'")


@dataclass(frozen=True)
class AudioCLIPParams:
    """The `audioclip:` section of params.yaml."""

    profile: Literal["paper", "small"] = "small"  # tower sizes (see profile_config)
    checkpoint: str | None = "models/pretrain/best.pt"  # ours (pretrain stage), official AudioCLIP-*.pt or CLIP.pt; null = random init
    second_checkpoint: str | None = None  # ESRNXFBSP.pt when `checkpoint` is CLIP.pt


class AudioCLIP(nn.Module):
    """AudioCLIP's image and audio towers plus the audio-image logit scale."""

    def __init__(self, config: AudioCLIPConfig | None = None) -> None:
        super().__init__()
        self.config = config or AudioCLIPConfig()
        self.visual = ModifiedResNet(self.config.image_tower())
        self.audio = ESResNeXtFBSP(self.config.audio_tower())
        self.logit_scale_ai = nn.Parameter(torch.tensor(math.log(100.0)))
        self.load_report: dict[str, Any] = {"source": None}

    # ---- encoders -------------------------------------------------------------------------
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images [B, 3, S, S] (see preprocess_image / normalize_frames) -> [B, E]."""
        s = self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"encode_image: expected [B, 3, {s}, {s}], got {tuple(x.shape)}")
        return self.visual(x)

    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] (or [B, C, N]) in [-1, 1] at config.sample_rate -> [B, E]."""
        if wave.dim() not in (2, 3):
            raise ValueError(f"encode_audio: expected [B, N] or [B, C, N], got {tuple(wave.shape)}")
        peak = float(wave.detach().abs().max()) if wave.numel() else 0.0
        if peak > 2.0:  # a little headroom for decoders that overshoot; int16 input is far above
            raise ValueError(
                f"encode_audio: expects floats in [-1, 1], got max |w| = {peak:.1f} "
                "(int16-range input? divide by 32768)"
            )
        return self.audio(wave.float() * INT16_SCALE)  # [B,E]

    def forward(self, audio: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio [B, N], image [B, 3, S, S]) -> (audio embeddings [B, E], image embeddings [B, E])."""
        return self.encode_audio(audio), self.encode_image(image)

    # ---- objectives -----------------------------------------------------------------------
    def logit_scale(self) -> torch.Tensor:
        return self.logit_scale_ai.exp().clamp(1.0, 100.0)

    def audio_image_logits(self, a_emb: torch.Tensor, i_emb: torch.Tensor) -> torch.Tensor:
        """Clamped exp(logit_scale_ai) x cosine similarities: [Ba, E], [Bi, E] -> [Ba, Bi]."""
        return self.logit_scale() * F.normalize(a_emb, dim=-1) @ F.normalize(i_emb, dim=-1).T

    def audio_image_loss(self, a_emb: torch.Tensor, i_emb: torch.Tensor) -> torch.Tensor:
        """The official audio-image objective: CE(audio->image) + CE(image->audio) (a sum, not a
        mean), pairs on the diagonal. Add `fbsp_loss()` whenever audio passed through, as AudioCLIP does."""
        logits = self.audio_image_logits(a_emb, i_emb)  # [B,B]
        target = torch.arange(logits.shape[0], device=logits.device)
        return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)

    def fbsp_loss(self) -> torch.Tensor:
        """AudioCLIP's FBSP regulariser (`loss_ttf`): MSE of the normalized filter norms to 1."""
        return self.audio.fbsp_loss()

    # ---- checkpoints ----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        second_path: str | Path | None = None,
        config: AudioCLIPConfig | None = None,
    ) -> "AudioCLIP":
        """Load an official AudioCLIP-*.pt, the CLIP.pt + ESRNXFBSP.pt pair, or our own checkpoint.

        Returns the model in eval mode; `model.load_report` tells what was ignored/computed/fresh.
        `config` defaults to the paper profile (official files) or the stored one (ours); given for
        our own file, it must equal the stored one.
        """
        path = Path(path)
        first = read_checkpoint(path)
        if first.get("format") == CHECKPOINT_FORMAT:
            if second_path is not None:
                raise CheckpointError(f"{path}: an avelib checkpoint takes no second file ({second_path})")
            stored = AudioCLIPConfig.from_dict(first["config"], where=f"{path}: config")
            if config is not None and config != stored:
                diff = {
                    k: (v, getattr(config, k)) for k, v in stored.to_dict().items() if getattr(config, k) != v
                }
                raise CheckpointError(f"{path}: stored config differs from the requested one: {diff}")
            model = cls(stored)
            model._load_state(first["state_dict"], str(path), fresh=())
            model.load_report["extra"] = first.get("extra", {})
            return model.eval()
        model = cls(config or profile_config("paper"))
        if second_path is None:
            model._load_state(first, str(path), fresh=())
            return model.eval()
        second_path = Path(second_path)
        second = read_checkpoint(second_path)
        state, fresh = _merge_pair(first, path, second, second_path, model)
        model._load_state(state, f"{path} + {second_path}", fresh=fresh)
        return model.eval()

    def _load_state(self, state: Mapping[str, Any], source: str, fresh: tuple[str, ...]) -> None:
        usable, ignored, problems = fit_state(self.state_dict(), state, source, fresh)
        if problems:
            raise CheckpointError(
                f"{source}: does not fit AudioCLIP profile {self.config.name!r}: " + "; ".join(problems)
            )
        self.load_state_dict(usable, strict=False)
        computed = [k for k in _COMPUTED_KEYS if k not in usable]
        log.info(
            "%s: loaded %d tensors, ignored %d text-tower keys, computed %s, fresh %s",
            source, len(usable), len(ignored), computed, list(fresh),
        )
        self.load_report = {
            "source": source,
            "loaded": len(usable),
            "ignored": sorted(ignored),
            "computed": computed,
            "fresh": list(fresh),
        }


def fit_state(
    own: Mapping[str, torch.Tensor], state: Mapping[str, Any], source: str, fresh: tuple[str, ...] = ()
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(usable tensors, ignored text keys, problems) of a checkpoint `state` against a model's `own`."""
    ignored, unexpected, mismatched, usable = [], [], [], {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: key {key!r} holds {type(value).__name__}, not a tensor")
        if _is_text_key(key):
            ignored.append(key)
        elif key in _EMPTY_PLACEHOLDERS and value.numel() == 0:
            ignored.append(key)
        elif key not in own:
            unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            usable[key] = value
    missing = [k for k in own if k not in usable and k not in _COMPUTED_KEYS and k not in fresh]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_show(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_show(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_show(mismatched)}")
    return usable, ignored, problems


def _merge_pair(
    a: Mapping[str, Any], a_path: Path, b: Mapping[str, Any], b_path: Path, model: AudioCLIP
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """CLIP.pt + ESRNXFBSP.pt (either order) -> one state with `audio.` prefixes, fresh keys."""
    is_clip = [any(k.startswith("visual.") for k in s) for s in (a, b)]
    if is_clip == [True, False]:
        clip, clip_path, esr, esr_path = a, a_path, b, b_path
    elif is_clip == [False, True]:
        clip, clip_path, esr, esr_path = b, b_path, a, a_path
    else:
        raise CheckpointError(
            f"{a_path} + {b_path}: expected one CLIP.pt (with visual.* keys) and one ESRNXFBSP.pt "
            "(audio tower keys without prefix)"
        )
    if any(k.startswith("audio.") for k in clip):
        raise CheckpointError(f"{clip_path}: already holds audio.* keys; load it alone, without {esr_path}")
    state = dict(clip)
    for k, v in esr.items():
        if k.startswith("audio."):
            raise CheckpointError(f"{esr_path}: key {k!r} has an audio. prefix; expected ESRNXFBSP.pt layout")
        state["audio." + k] = v
    fresh = ["logit_scale_ai"]
    own = model.state_dict()
    for key in ("audio.fc.weight", "audio.fc.bias"):
        if key in state and tuple(state[key].shape) != tuple(own[key].shape):
            # ESRNXFBSP.pt ends in the 527-way AudioSet classifier, unrelated to the joint space
            del state[key]
        if key not in state:
            fresh.append(key)
    state.pop("logit_scale_ai", None)
    warnings.warn(
        f"{esr_path}: audio trunk loaded; {fresh} keep their fresh initialization (the pair has no "
        "audio->joint-space projection): train them (contrastive stage) before using audio embeddings",
        stacklevel=3,
    )
    return state, tuple(fresh)


def _is_text_key(key: str) -> bool:
    return key in _TEXT_KEYS or key.startswith(_TEXT_PREFIXES)


def _show(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, JIT archives
        raise CheckpointError(f"{path}: not a loadable state_dict checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict (state_dict), got {type(obj).__name__}")
    return obj


def save_checkpoint(model: AudioCLIP, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write config + state_dict + `extra` (plain python values, e.g. resolved params) atomically."""
    blob = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def build_audioclip(
    profile: str, checkpoint: str | Path | None = None, second_checkpoint: str | Path | None = None
) -> AudioCLIP:
    """Model of `profile` (eval mode): random init when `checkpoint` is None, else loaded."""
    cfg = profile_config(profile)  # type: ignore[arg-type]
    if checkpoint is None:
        if second_checkpoint is not None:
            raise ValueError("build_audioclip: second_checkpoint given without checkpoint")
        return AudioCLIP(cfg).eval()
    return AudioCLIP.from_checkpoint(checkpoint, second_checkpoint, config=cfg)


def build_from_params(p: AudioCLIPParams) -> AudioCLIP:
    return build_audioclip(p.profile, p.checkpoint, p.second_checkpoint)


# ---- image preprocessing ----------------------------------------------------------------
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(CLIP_MEAN, device=device)[:, None, None]  # [3,1,1]
    std = torch.tensor(CLIP_STD, device=device)[:, None, None]
    return mean, std


def preprocess_image(image: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """CLIP preprocessing of one RGB uint8 image [H, W, 3]: the decode path's resize and center crop
    (avelib.data.media.resize_crop), then CLIP mean/std -> float32 [3, size, size]."""
    return normalize_frames(torch.from_numpy(resize_crop(image, size)))  # [3,S,S]


def normalize_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [..., S, S, 3] (already resized) -> float32 [..., 3, S, S], CLIP mean/std normalized."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.dim() < 3 or x.shape[-1] != 3:
        raise ValueError(f"normalize_frames: expected uint8 [..., S, S, 3], got {x.dtype} {tuple(x.shape)}")
    x = x.movedim(-1, -3).float().div_(255.0)  # [...,3,S,S]
    mean, std = _mean_std(x.device)
    return (x - mean) / std
