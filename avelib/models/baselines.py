"""Baselines with the localizer's interface: AVEL (A+V-att, ECCV'18) and a per-second MLP.

Every model of the suite exposes the same three calls, so one training harness serves them all:
  out = model(audio, visual)                      # forward
  model.segment_scores(out) -> [B,10,29]          # per-second scores, argmax = prediction
  model.loss(out, labels [B,10] int64, weights)   # training loss
`segment_predictions(model, out)` gives int64 [B,10] for any of them.

AVEL adaptation: the original attends over the 7x7=49 VGG19 regions of each second, guided by the
audio of that second. Our AudioCLIP features have no region axis: a visual input [B,10,Dv] is treated
as one region (R=1, the attention is then the identity), and [B,10,K,Dv] (K frames, or 49 classic
regions flattened) attends over that axis. Sizes are ours, scaled down for the CPU profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from avelib.data.ave import NUM_CLASSES


@dataclass(frozen=True)
class BaselineConfig:
    """Sizes of the baselines (our defaults; AVEL's original uses 512/128)."""

    hidden: int = 64
    """Width of the attention projection (AVEL) and of the MLP hidden layer."""
    lstm_hidden: int = 32
    """Per-direction hidden size of AVEL's audio and visual BiLSTMs."""
    dropout: float = 0.1
    """Dropout before the classifier layers."""
    modality: Literal["audio", "visual", "both"] = "both"
    """MLP only: inputs used (AVEL always needs both: audio guides the visual attention)."""


@dataclass
class SegmentOutput:
    """Per-second class logits [B,T,29]; attention [B,T,R] for AVEL."""

    logits: torch.Tensor
    attention: torch.Tensor | None = None


class SegmentModel(Protocol):
    def __call__(self, audio: torch.Tensor | None, visual: torch.Tensor | None) -> Any: ...
    def segment_scores(self, out: Any) -> torch.Tensor: ...
    def loss(self, out: Any, labels: torch.Tensor, weights: dict[str, float] | None = None) -> torch.Tensor: ...


def segment_predictions(model: Any, out: Any) -> torch.Tensor:
    """int64 [B,T] per-second predictions of any model of the suite."""
    predict = getattr(model, "predict", None)
    if predict is not None:
        return predict(out)  # [B,T]
    return model.segment_scores(out).argmax(dim=-1)  # [B,T]


def _segment_ce(out: SegmentOutput, labels: torch.Tensor, weights: dict[str, float] | None) -> torch.Tensor:
    w = (weights or {}).get("ce", 1.0)
    return w * F.cross_entropy(out.logits.reshape(-1, NUM_CLASSES), labels.reshape(-1))


class AVELAttention(nn.Module):
    """AVEL A+V-att: audio-guided visual attention, BiLSTMs per modality, averaged, MLP -> 29 per second."""

    def __init__(self, cfg: BaselineConfig, audio_dim: int, visual_dim: int) -> None:
        super().__init__()
        h = cfg.hidden
        self.affine_a = nn.Linear(audio_dim, h)
        self.affine_v = nn.Linear(visual_dim, h)
        self.att_a = nn.Linear(h, h, bias=False)
        self.att_v = nn.Linear(h, h, bias=False)
        self.att_score = nn.Linear(h, 1, bias=False)
        self.lstm_a = nn.LSTM(audio_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.lstm_v = nn.LSTM(visual_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(
            nn.Dropout(cfg.dropout), nn.Linear(2 * cfg.lstm_hidden, h), nn.ReLU(), nn.Linear(h, NUM_CLASSES)
        )

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> SegmentOutput:
        if audio is None or visual is None:
            raise ValueError("AVEL needs both audio and visual inputs")
        if visual.dim() == 3:
            visual = visual.unsqueeze(2)  # [B,T,1,Dv]: one region, attention is the identity
        a = F.relu(self.affine_a(audio))  # [B,T,h]
        v = F.relu(self.affine_v(visual))  # [B,T,R,h]
        content = torch.tanh(self.att_v(v) + self.att_a(a).unsqueeze(2))  # [B,T,R,h]
        att = self.att_score(content).squeeze(-1).softmax(dim=-1)  # [B,T,R]
        v_att = (att.unsqueeze(-1) * visual).sum(dim=2)  # [B,T,Dv]
        ha, _ = self.lstm_a(audio)  # [B,T,2*l]
        hv, _ = self.lstm_v(v_att)  # [B,T,2*l]
        logits = self.head(0.5 * (ha + hv))  # [B,T,29]
        return SegmentOutput(logits, att)

    @staticmethod
    def segment_scores(out: SegmentOutput) -> torch.Tensor:
        return out.logits.softmax(dim=-1)  # [B,T,29]

    @staticmethod
    def loss(out: SegmentOutput, labels: torch.Tensor, weights: dict[str, float] | None = None) -> torch.Tensor:
        return _segment_ce(out, labels, weights)


class SegmentMLP(nn.Module):
    """Per-second MLP on concatenated audio+visual features -> 29-way logits (no temporal context)."""

    def __init__(self, cfg: BaselineConfig, audio_dim: int | None, visual_dim: int | None) -> None:
        super().__init__()
        self.use_a = cfg.modality in ("audio", "both")
        self.use_v = cfg.modality in ("visual", "both")
        n_in = (audio_dim or 0) * self.use_a + (visual_dim or 0) * self.use_v
        if n_in == 0:
            raise ValueError(f"SegmentMLP with modality={cfg.modality} got no input dims ({audio_dim}, {visual_dim})")
        self.net = nn.Sequential(
            nn.Linear(n_in, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, NUM_CLASSES)
        )

    def forward(self, audio: torch.Tensor | None, visual: torch.Tensor | None) -> SegmentOutput:
        parts = []
        if self.use_a:
            parts.append(audio)  # [B,T,Da]
        if self.use_v:
            parts.append(visual.mean(dim=2) if visual.dim() == 4 else visual)  # [B,T,Dv]
        return SegmentOutput(self.net(torch.cat(parts, dim=-1)))  # [B,T,29]

    segment_scores = staticmethod(AVELAttention.segment_scores)
    loss = staticmethod(AVELAttention.loss)
