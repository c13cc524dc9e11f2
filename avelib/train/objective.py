"""AudioCLIP's audio-image objective and the optimiser schedule of the contrastive trainers."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def contrastive_loss(model: nn.Module, a_emb: torch.Tensor, i_emb: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy of the audio-image logits, diagonal = positives: CE(audio->image) +
    CE(image->audio), a sum as in the official AudioCLIP objective (so `fbsp_weight` = 1 matches it)."""
    logits = model.audio_image_logits(a_emb, i_emb).float()  # [B,B] rows audio, cols image (fp32 CE)
    target = torch.arange(logits.shape[0], device=logits.device)  # [B]
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


HEADS = ("visual.attnpool", "audio.fc", "logit_scale")  # the towers' last layers (both profiles) and the scales


def select_layers(model: nn.Module, layers: str) -> None:
    """Which parameters train: "all", or "heads" only (HEADS); the others get no gradient."""
    if layers not in ("all", "heads"):
        raise ValueError(f"finetune.layers must be all or heads, got {layers!r}")
    for name, p in model.named_parameters():
        p.requires_grad_(layers == "all" or name.startswith(HEADS))


def train_mode(model: nn.Module) -> None:
    """Training mode, except for modules whose parameters are all fixed: they stay in eval mode, so "heads"
    keeps the bodies' BatchNorm statistics as they were ("all" trains every module as before)."""
    model.train()
    for module in model.modules():
        weights = list(module.parameters())
        if weights and not any(p.requires_grad for p in weights):
            module.eval()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay weight matrices / conv kernels only; biases, norms and scalar scales are not decayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(total_steps: int, warmup_fraction: float, min_lr_ratio: float):
    """Linear warm-up then cosine decay, as a multiplier of the peak lr for `LambdaLR`."""
    warmup = int(round(warmup_fraction * total_steps))

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn


# ----------------------------------------------------------------------------------------------------
