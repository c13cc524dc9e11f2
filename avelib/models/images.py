"""Frames from the segment cache as the image tower's input batch."""

from __future__ import annotations

import torch

from avelib.models.audioclip import normalize_frames


def to_images(frames_u8: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 [B,S,S,3] -> normalized float [B,3,S,S] on `device` (CLIP mean/std)."""
    x = normalize_frames(frames_u8.to(device, non_blocking=True))  # [B,3,S,S]
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
