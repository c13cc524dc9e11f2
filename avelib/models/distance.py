"""A learned audio-visual distance in the spirit of AVEL's AVDLN (ECCV'18, cross-modality localization).

Two small embedding nets, one per modality (Linear -> LeakyReLU(0.3) -> Linear, as AVDLN's), and the
Euclidean distance of their outputs; trained with the contrastive loss of Hadsell et al. on
matching (event) vs non-matching (background) seconds. Sizes are params (ours: 128 -> 64).
"""

from __future__ import annotations

import torch
from torch import nn


def _branch(dim: int, hidden: int, embed: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.3), nn.Linear(hidden, embed))


class DistanceNet(nn.Module):
    """distance(audio [...,Da], visual [...,Dv]) -> [...]; `pairwise` gives [N,T,T] per video."""

    def __init__(self, audio_dim: int, visual_dim: int, hidden: int = 128, embed: int = 64) -> None:
        super().__init__()
        self.audio = _branch(audio_dim, hidden, embed)
        self.visual = _branch(visual_dim, hidden, embed)

    @staticmethod
    def _distance(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return ((a - v) ** 2).sum(dim=-1).clamp_min(1e-7).sqrt()  # clamp: a finite gradient at 0

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self._distance(self.audio(audio), self.visual(visual))  # [...]

    def pairwise(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """[N,T,T]: distance of audio second i and visual second j of each video; inputs [N,T,D]."""
        a = self.audio(audio).unsqueeze(2)  # [N,T,1,E]
        v = self.visual(visual).unsqueeze(1)  # [N,1,T,E]
        return self._distance(a, v)  # [N,T,T]


def contrastive_loss(distance: torch.Tensor, matching: torch.Tensor, margin: float) -> torch.Tensor:
    """Hadsell et al.: matching pairs pulled to 0, others pushed beyond `margin`; inputs [B]."""
    y = matching.float()
    return (y * distance**2 + (1 - y) * (margin - distance).clamp_min(0) ** 2).mean()
