"""CLIP's modified ResNet image tower (RN50 at paper size), as used by AudioCLIP.

Differences from a torchvision ResNet, all reproduced here with CLIP's state_dict key names:
- a 3-conv stem (stride 2 then two stride-1 3x3 convs) followed by a 2x2 average pool;
- anti-aliased strides: a stride-s block average-pools after its 3x3 conv and before its
  shortcut conv (both convs keep stride 1);
- attention pooling: the mean feature is prepended as a query token to the 7x7 (S/32)^2 grid,
  positional embeddings are added and one multi-head attention step reads out the image vector.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ImageTowerConfig:
    """Sizes of the image tower (paper values = CLIP RN50)."""

    image_size: int = 224  # square input side; must be a multiple of 32
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)  # bottlenecks per stage
    width: int = 64  # stem output channels; stage k has planes width * 2**k, output planes * 4
    out_dim: int = 1024  # attention-pool output = joint embedding size

    @property
    def feature_dim(self) -> int:
        return self.width * 32

    @property
    def heads(self) -> int:
        # CLIP ties the head count to the width: 64 channels per head
        return self.width * 32 // 64


class AntiAliasBottleneck(nn.Module):
    """1x1 -> 3x3 -> [avgpool s] -> 1x1 (x4) with an [avgpool s] -> 1x1 shortcut when shapes change."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.stride = stride
        self.downsample: nn.Module | None = None
        if stride > 1 or inplanes != out:
            # keys downsample.0 (conv) / downsample.1 (bn) as in CLIP; the pool holds no weights
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("pool", nn.AvgPool2d(stride) if stride > 1 else nn.Identity()),
                        ("0", nn.Conv2d(inplanes, out, 1, bias=False)),
                        ("1", nn.BatchNorm2d(out)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        if self.stride > 1:
            y = F.avg_pool2d(y, self.stride)
        y = self.bn3(self.conv3(y))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip)


class AttentionPool(nn.Module):
    """One multi-head attention read-out: query = mean token, keys/values = mean + grid tokens."""

    def __init__(self, grid: int, dim: int, heads: int, out_dim: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention pool: dim {dim} not divisible by {heads} heads")
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, dim) / dim**0.5)
        self.k_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, out_dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if h * w + 1 != self.positional_embedding.shape[0]:
            raise ValueError(
                f"attention pool: a {h}x{w} grid does not fit {self.positional_embedding.shape[0] - 1} "
                "positions (wrong image size for this model?)"
            )
        tokens = x.flatten(2).transpose(1, 2)  # [B,HW,C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)  # [B,L,C]
        tokens = tokens + self.positional_embedding[None]  # [B,L,C]
        d = c // self.heads
        # only the first (mean) token's output is used, so only its query is needed
        q = self.q_proj(tokens[:, :1]).view(b, 1, self.heads, d).transpose(1, 2)  # [B,h,1,d]
        k = self.k_proj(tokens).view(b, -1, self.heads, d).transpose(1, 2)  # [B,h,L,d]
        v = self.v_proj(tokens).view(b, -1, self.heads, d).transpose(1, 2)  # [B,h,L,d]
        out = F.scaled_dot_product_attention(q, k, v)  # [B,h,1,d], softmax(q k / sqrt(d)) v
        return self.c_proj(out.transpose(1, 2).reshape(b, c))  # [B,out_dim]


class ModifiedResNet(nn.Module):
    """Image tower: normalized images [B, 3, S, S] -> [B, out_dim]."""

    def __init__(self, cfg: ImageTowerConfig) -> None:
        super().__init__()
        if cfg.image_size % 32:
            raise ValueError(f"image tower: image_size {cfg.image_size} must be a multiple of 32")
        self.cfg = cfg
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w // 2)
        self.conv2 = nn.Conv2d(w // 2, w // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(w // 2)
        self.conv3 = nn.Conv2d(w // 2, w, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(w)
        inplanes = w
        for i, n_blocks in enumerate(cfg.layers):
            planes = w * 2**i
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(AntiAliasBottleneck(inplanes, planes, stride))
                inplanes = planes * AntiAliasBottleneck.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.attnpool = AttentionPool(cfg.image_size // 32, cfg.feature_dim, cfg.heads, cfg.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)
        x = F.relu(self.bn1(self.conv1(x)))  # [B,w/2,S/2,S/2]
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))  # [B,w,S/2,S/2]
        x = F.avg_pool2d(x, 2)  # [B,w,S/4,S/4]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [B,32w,S/32,S/32]
        return self.attnpool(x)  # [B,out_dim]
