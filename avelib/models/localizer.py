"""AVE-CLIP localizer: multi-window temporal transformer with multi-domain attention + temporal refining.

Pipeline (spec/ave-clip.md; every open choice is a `LocalizerConfig` field, defaults are ours):
  audio [B,T,Da], visual [B,T,Dv] -> per-modality projection to D -> audio-visual fusion [B,T,D]
  -> for each window size w: split T into non-overlapping windows (a remainder joins the last one),
     attention inside each window over time (w x w) and/or over channels (c x c per head), residual+norm+FFN
  -> fuse the per-window-size outputs (concat -> linear back to D, or sum) [B,T,D]
  -> temporal refining: alpha_t = sigmoid(linear(BiLSTM(LayerNorm(f)))) [B,T]; f * alpha -> one more
     full-length block -> max over time -> 28-way video class.
Per-second prediction: the video class where alpha_t > 0.5, else background (28).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from avelib.data.ave import BACKGROUND, NUM_CLASSES, NUM_SEGMENTS

NUM_EVENTS = NUM_CLASSES - 1  # 28 event classes (background excluded)


@dataclass(frozen=True)
class LocalizerConfig:
    """params.yaml section `localizer` (all values are design defaults of ours, not the paper's)."""

    hidden: int = 64
    """Hidden size D of the fused sequence and of every attention block."""
    heads: int = 4
    """Attention heads (temporal and feature domain); must divide `hidden`."""
    dropout: float = 0.1
    """Dropout after projections, attention and FFN."""
    windows: tuple[int, ...] = (10, 5, 3, 2)
    """Window sizes of the multi-window fusion; a remainder shorter than w joins the last window."""
    attention: Literal["temporal", "feature", "both"] = "both"
    """Attention domain inside a window: over time (w x w), over channels (c x c per head), or both (time then channels)."""
    fusion: Literal["concat", "sum"] = "concat"
    """How per-window-size outputs are fused: concatenated then a linear back to D, or summed."""
    refine: bool = True
    """Temporal refining (event relevance alpha from a BiLSTM, re-weighting, one more full-length block)."""
    modality: Literal["audio", "visual", "both"] = "both"
    """Inputs used; single-modality variants drop the other input."""
    av_fusion: Literal["concat", "concat_product"] = "concat_product"
    """Audio-visual fusion of the projected inputs: linear of [a, v] or of [a, v, a*v] (the product
    helps express 'audible AND visible')."""
    ffn_mult: int = 2
    """FFN inner width = ffn_mult * hidden."""
    positional: bool = True
    """Learned per-second position embedding added before the windows (attention alone is order-blind)."""


@dataclass
class LocalizerOutput:
    """alpha [B,T] in (0,1), alpha_logits [B,T], class_logits [B,28], attention maps when asked, and
    sequence [B,T,D]: the per-second features whose max over time feeds the classifier."""

    alpha: torch.Tensor
    alpha_logits: torch.Tensor
    class_logits: torch.Tensor
    attention: dict[str, Any] | None = field(default=None)
    sequence: torch.Tensor | None = field(default=None)


def window_sizes(length: int, w: int) -> list[int]:
    """Sizes of the non-overlapping windows of size w over `length` steps (remainder joins the last)."""
    if w < 1:
        raise ValueError(f"window size must be >= 1, got {w}")
    if w >= length:
        return [length]
    sizes = [w] * (length // w)
    sizes[-1] += length % w  # e.g. w=3 on 10 -> [3, 3, 4]
    return sizes


class Dropout(nn.Module):
    """nn.Dropout's maths (keep each element with probability 1 - p, scale by 1 / (1 - p)) with the mask
    from one uniform draw per element: a third less time than torch's CPU bernoulli_ on the attention maps."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p  # [...] bool, P(True) = 1 - p
        return x * (keep * (1.0 / (1.0 - self.p)))


class TemporalAttention(nn.Module):
    """Self-attention over the time steps of a window: a w x w map per head."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, attn = self.mha(x, x, x, need_weights=True, average_attn_weights=False)  # [M,w,D], [M,h,w,w]
        return out, attn


class FeatureAttention(nn.Module):
    """Self-attention over channels inside a window: a c x c map per head (c = D / heads).

    Channels are the tokens, their values over the w seconds the token content. Queries and keys are
    L2-normalised over time with a learned per-head temperature (cross-covariance attention), which
    keeps the map well scaled for any window length.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))  # [h,1,1]
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = x.shape[-1]
        qkv = self.qkv(x)  # [M,w,3D]
        qk = qkv[..., : 2 * d]  # [M,w,2D]
        # unit norm over time; linalg.vector_norm over this dim takes ~100x longer on the CPU
        qk = qk / qk.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)  # [M,w,2D]
        q, k = rearrange(qk, "m w (two h c) -> two m h c w", two=2, h=self.heads)  # [M,h,c,w] each
        v = rearrange(qkv[..., 2 * d :], "m w (h c) -> m h c w", h=self.heads)  # [M,h,c,w]
        # the temperature scales q ([M,h,c,w]) rather than the larger map ([M,h,c,c])
        attn = ((q * self.temperature) @ k.transpose(-2, -1)).softmax(dim=-1)  # [M,h,c,c]
        out = self.drop(attn) @ v  # [M,h,c,w]
        out = rearrange(out, "m h c w -> m w (h c)")  # [M,w,D]
        return self.proj(out), attn


class WindowBlock(nn.Module):
    """One transformer block applied inside every window of size w (weights shared across windows)."""

    def __init__(self, cfg: LocalizerConfig, window: int) -> None:
        super().__init__()
        d = cfg.hidden
        self.window = window
        self.temporal = TemporalAttention(d, cfg.heads, cfg.dropout) if cfg.attention in ("temporal", "both") else None
        self.feature = FeatureAttention(d, cfg.heads, cfg.dropout) if cfg.attention in ("feature", "both") else None
        self.norm_t = nn.LayerNorm(d) if self.temporal is not None else None
        self.norm_f = nn.LayerNorm(d) if self.feature is not None else None
        self.norm_o = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, cfg.ffn_mult * d), nn.GELU(), Dropout(cfg.dropout), nn.Linear(cfg.ffn_mult * d, d)
        )
        self.drop = Dropout(cfg.dropout)

    def _layer(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        t_map = f_map = None
        if self.temporal is not None:
            a, t_map = self.temporal(z)  # [M,w,D], [M,h,w,w]
            z = self.norm_t(z + self.drop(a))  # [M,w,D]
        if self.feature is not None:
            a, f_map = self.feature(z)  # [M,w,D], [M,h,c,c]
            z = self.norm_f(z + self.drop(a))  # [M,w,D]
        z = self.norm_o(z + self.drop(self.ffn(z)))  # [M,w,D]
        return z, t_map, f_map

    def forward(self, x: torch.Tensor, want_maps: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, t, _ = x.shape  # x: [B,T,D]
        sizes = window_sizes(t, self.window)
        n_full = sum(size == self.window for size in sizes)  # windows of exactly size w, run as one batch
        cut = self.window * n_full
        outs: list[torch.Tensor] = []
        t_maps: list[tuple[int, int, torch.Tensor]] = []  # (start, size, [B,h,s,s])
        f_maps: list[torch.Tensor] = []  # [B,n,h,c,c]
        if n_full > 0:
            head = rearrange(x[:, :cut], "b (n w) d -> (b n) w d", w=self.window)  # [B*n,w,D]
            z, tm, fm = self._layer(head)
            outs.append(rearrange(z, "(b n) w d -> b (n w) d", b=b))  # [B,n*w,D]
            if tm is not None:
                tm = rearrange(tm, "(b n) h i j -> b n h i j", b=b)  # [B,n,h,w,w]
                t_maps += [(k * self.window, self.window, tm[:, k]) for k in range(n_full)]
            if fm is not None:
                f_maps.append(rearrange(fm, "(b n) h i j -> b n h i j", b=b))  # [B,n,h,c,c]
        if cut < t:
            z, tm, fm = self._layer(x[:, cut:])  # the last window, longer by the remainder: [B,s,D]
            outs.append(z)
            if tm is not None:
                t_maps.append((cut, t - cut, tm))  # [B,h,s,s]
            if fm is not None:
                f_maps.append(fm[:, None])  # [B,1,h,c,c]
        y = torch.cat(outs, dim=1)  # [B,T,D]
        maps: dict[str, torch.Tensor] = {}
        if want_maps and t_maps:
            full = x.new_zeros(b, t_maps[0][2].shape[1], t, t)  # [B,h,T,T] block-diagonal
            for start, size, m in t_maps:
                full[:, :, start : start + size, start : start + size] = m
            maps["temporal"] = full
        if want_maps and f_maps:
            maps["feature"] = torch.cat(f_maps, dim=1)  # [B,n_windows,h,c,c]
        return y, maps


class MultiWindowFusion(nn.Module):
    """One WindowBlock per window size; outputs fused by concat->linear or sum.

    `active` restricts the branches used (multi-scale training phases). With concat fusion an
    inactive branch contributes zeros, so the same linear layer serves every phase.
    """

    def __init__(self, cfg: LocalizerConfig) -> None:
        super().__init__()
        if not cfg.windows or len(set(cfg.windows)) != len(cfg.windows):
            raise ValueError(f"localizer.windows must be a non-empty set of sizes, got {cfg.windows}")
        self.windows = tuple(cfg.windows)
        self.fusion = cfg.fusion
        self.blocks = nn.ModuleDict({str(w): WindowBlock(cfg, w) for w in self.windows})
        self.merge = nn.Linear(len(self.windows) * cfg.hidden, cfg.hidden) if cfg.fusion == "concat" else None
        self.norm = nn.LayerNorm(cfg.hidden)
        self.active: tuple[int, ...] = self.windows

    def forward(self, x: torch.Tensor, want_maps: bool = False) -> tuple[torch.Tensor, dict[str, Any]]:
        outs: list[torch.Tensor] = []
        maps: dict[str, Any] = {}
        for w in self.windows:
            if w not in self.active:
                outs.append(torch.zeros_like(x))  # [B,T,D]
                continue
            y, m = self.blocks[str(w)](x, want_maps)  # [B,T,D]
            outs.append(y)
            if want_maps:
                maps[str(w)] = m
        if self.merge is not None:
            fused = self.merge(torch.cat(outs, dim=-1))  # [B,T,W*D] -> [B,T,D]
        else:
            fused = torch.stack(outs, dim=0).sum(dim=0)  # [B,T,D]
        return self.norm(fused), maps


class AVECLIPLocalizer(nn.Module):
    """The AVE-CLIP localizer. forward(audio [B,T,Da], visual [B,T,Dv]) -> LocalizerOutput."""

    def __init__(self, cfg: LocalizerConfig, audio_dim: int | None, visual_dim: int | None) -> None:
        super().__init__()
        if cfg.hidden % cfg.heads:
            raise ValueError(f"localizer.hidden={cfg.hidden} must be divisible by localizer.heads={cfg.heads}")
        self.cfg = cfg
        d = cfg.hidden
        use_a = cfg.modality in ("audio", "both")
        use_v = cfg.modality in ("visual", "both")
        if (use_a and not audio_dim) or (use_v and not visual_dim):
            raise ValueError(f"modality={cfg.modality} needs audio_dim/visual_dim, got {audio_dim}/{visual_dim}")
        self.proj_a = nn.Sequential(nn.Linear(audio_dim, d), nn.LayerNorm(d), Dropout(cfg.dropout)) if use_a else None
        self.proj_v = nn.Sequential(nn.Linear(visual_dim, d), nn.LayerNorm(d), Dropout(cfg.dropout)) if use_v else None
        n_in = (3 if cfg.av_fusion == "concat_product" else 2) if cfg.modality == "both" else 1
        self.fuse = nn.Sequential(nn.Linear(n_in * d, d), nn.GELU(), nn.LayerNorm(d))
        self.pos = nn.Parameter(torch.zeros(1, NUM_SEGMENTS, d)) if cfg.positional else None  # [1,T,D]
        self.multi = MultiWindowFusion(cfg)
        if cfg.refine:
            self.alpha_norm = nn.LayerNorm(d)
            self.alpha_lstm = nn.LSTM(d, d // 2, batch_first=True, bidirectional=True)
            self.final = WindowBlock(cfg, NUM_SEGMENTS)  # one more full-length fusion
        self.alpha_head = nn.Linear(d, 1)
        self.classifier = nn.Linear(d, NUM_EVENTS)

    def set_windows(self, windows: tuple[int, ...] | list[int] | None) -> None:
        """Restrict the active window sizes (None = all); used by the multi-scale training phases."""
        active = tuple(self.multi.windows if windows is None else windows)
        unknown = set(active) - set(self.multi.windows)
        if unknown or not active:
            raise ValueError(f"windows {active} must be a non-empty subset of the model's {self.multi.windows}")
        self.multi.active = active

    def _inputs(self, audio: torch.Tensor | None, visual: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.proj_a is not None:
            if audio is None:
                raise ValueError("this localizer uses audio but got audio=None")
            parts.append(self.proj_a(audio))  # [B,T,D]
        if self.proj_v is not None:
            if visual is None:
                raise ValueError("this localizer uses visual but got visual=None")
            if visual.dim() == 4:  # [B,T,R,Dv] region/frame axis: average it
                visual = visual.mean(dim=2)  # [B,T,Dv]
            parts.append(self.proj_v(visual))  # [B,T,D]
        if len(parts) == 2 and self.cfg.av_fusion == "concat_product":
            parts.append(parts[0] * parts[1])  # [B,T,D]
        return self.fuse(torch.cat(parts, dim=-1))  # [B,T,n*D] -> [B,T,D]

    def forward(
        self, audio: torch.Tensor | None, visual: torch.Tensor | None, return_attention: bool = False
    ) -> LocalizerOutput:
        x = self._inputs(audio, visual)  # [B,T,D]
        if x.shape[1] != NUM_SEGMENTS:
            raise ValueError(f"expected {NUM_SEGMENTS} segments, got input of shape {tuple(x.shape)}")
        if self.pos is not None:
            x = x + self.pos  # [B,T,D]
        f, maps = self.multi(x, want_maps=return_attention)  # [B,T,D]
        if self.cfg.refine:
            h, _ = self.alpha_lstm(self.alpha_norm(f))  # [B,T,D]
            alpha_logits = self.alpha_head(h).squeeze(-1)  # [B,T]
            alpha = torch.sigmoid(alpha_logits)  # [B,T]
            g, final_maps = self.final(f * alpha.unsqueeze(-1), want_maps=return_attention)  # [B,T,D]
            if return_attention:
                maps["final"] = final_maps
        else:
            alpha_logits = self.alpha_head(f).squeeze(-1)  # [B,T]
            alpha = torch.sigmoid(alpha_logits)  # [B,T]
            g = f  # [B,T,D]
        class_logits = self.classifier(g.max(dim=1).values)  # [B,28]
        return LocalizerOutput(alpha, alpha_logits, class_logits, maps if return_attention else None, g)

    def second_class_logits(self, out: LocalizerOutput) -> torch.Tensor:
        """[B,T,28]: the classifier applied to each second instead of the time max (weak supervision)."""
        if out.sequence is None:
            raise ValueError("this output carries no per-second sequence")
        return self.classifier(out.sequence)  # [B,T,28]

    @staticmethod
    def segment_scores(out: LocalizerOutput) -> torch.Tensor:
        """29-way per-second scores [B,T,29] whose argmax is the AVE-CLIP rule.

        Event columns hold alpha * p_c / max_c p_c (the video class gets alpha), background holds 1 - alpha,
        so argmax = video class where alpha > 0.5, else background.
        """
        p = out.class_logits.softmax(dim=-1)  # [B,28]
        p = p / p.max(dim=-1, keepdim=True).values  # [B,28], max = 1
        ev = out.alpha.unsqueeze(-1) * p.unsqueeze(1)  # [B,T,28]
        bg = (1.0 - out.alpha).unsqueeze(-1)  # [B,T,1]
        bg = torch.nextafter(bg, torch.full_like(bg, 2.0))  # alpha == 0.5 exactly -> background, as in predict
        return torch.cat([ev, bg], dim=-1)  # [B,T,29]

    @staticmethod
    def predict(out: LocalizerOutput) -> torch.Tensor:
        """int64 [B,T]: video class where alpha_t > 0.5, else background."""
        cls = out.class_logits.argmax(dim=-1, keepdim=True).expand_as(out.alpha)  # [B,T]
        return torch.where(out.alpha > 0.5, cls, torch.full_like(cls, BACKGROUND))  # [B,T]

    @staticmethod
    def loss(out: LocalizerOutput, labels: torch.Tensor, weights: dict[str, float] | None = None) -> torch.Tensor:
        """bce * BCE(alpha, event mask) + ce * CE(video class); all-background videos skip the CE term."""
        w = {"bce": 1.0, "ce": 1.0, **(weights or {})}
        event = labels != BACKGROUND  # [B,T] bool
        bce = F.binary_cross_entropy_with_logits(out.alpha_logits, event.float())
        has_event = event.any(dim=1)  # [B]
        if has_event.any():
            video_cls = labels.masked_fill(~event, -1).max(dim=1).values  # [B] class of the event seconds
            ce = F.cross_entropy(out.class_logits[has_event], video_cls[has_event])
        else:
            ce = out.class_logits.sum() * 0.0  # keeps the graph, contributes nothing
        return w["bce"] * bce + w["ce"] * ce


LOCALIZER_CHECKPOINT_KEYS = ("config", "state_dict", "audio_dim", "visual_dim", "postprocess_max_len", "encoder", "visual")


def localizer_checkpoint(
    model: AVECLIPLocalizer, audio_dim: int, visual_dim: int, postprocess_max_len: int,
    encoder: str, visual: str, windows: tuple[int, ...] | None, **extra: Any,
) -> dict[str, Any]:
    """Everything inference needs to rebuild the localizer (see avelib.predict.load_localizer)."""
    return {
        "config": dataclasses.asdict(model.cfg), "state_dict": model.state_dict(),
        "audio_dim": audio_dim, "visual_dim": visual_dim, "postprocess_max_len": postprocess_max_len,
        "encoder": encoder, "visual": visual, "windows": list(windows) if windows else None, **extra,
    }
