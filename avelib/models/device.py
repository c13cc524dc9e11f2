"""Where the towers run: device choice, bf16 autocast, channels_last and frame normalization."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn



def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available else cpu; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(name)


def autocast(device: torch.device, amp: bool) -> Any:
    """bf16 autocast on CUDA when `amp`, a no-op context elsewhere (the CPU runs plain fp32)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move to `device`; channels_last conv kernels (both towers are conv nets; oneDNN on the CPU and
    cuDNN run them faster in that layout)."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights (checkpoints load anywhere, whatever the training device)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
