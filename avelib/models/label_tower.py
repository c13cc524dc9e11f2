"""The text tower's stand-in for pretraining the small towers: one learned embedding per class name.

AudioCLIP's towers reach AVE pretrained: CLIP on image-text pairs, ESResNeXt on AudioSet, then all three
trained together on AudioSet with the class names as text (audio-text and image-text terms beside
audio-image). AVE itself is cut from AudioSet, so those towers have seen its categories named. The
`small` CPU profile starts from a random init; the `pretrain` stage gives it the same kind of start on
a separate SynthAVE pool, with this table playing the text tower (a class name always encodes to the
same vector, so a lookup table is all a text encoder would learn here).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LabelTower(nn.Module):
    """Class-name embeddings [C, E] and the logit scale of the audio-label / image-label terms."""

    def __init__(self, num_classes: int, embed_dim: int, logit_scale_init: float = 1 / 0.07) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(num_classes, embed_dim) * embed_dim**-0.5)  # [C,E]
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """Audio or image embeddings [B, E] -> scaled cosine similarity to every class name [B, C]."""
        scale = self.logit_scale.exp().clamp(1.0, 100.0)  # the same clamp as AudioCLIP's scales
        return scale * F.normalize(emb, dim=-1) @ F.normalize(self.embeddings, dim=-1).T

    def loss(self, a_emb: torch.Tensor, i_emb: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """CE(audio -> class name) + CE(image -> class name); classes: int64 [B]."""
        return F.cross_entropy(self.logits(a_emb).float(), classes) + F.cross_entropy(self.logits(i_emb).float(), classes)
