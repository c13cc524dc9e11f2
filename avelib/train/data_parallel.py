"""Data-parallel fine-tuning on torchrun ranks: what makes N ranks take the step of one process.

Each rank encodes every `world`-th pair of a global batch (`local_rows`); `gather_batch` assembles the
whole batch of embeddings for the loss, so each rank computes the one-process loss, and its backward
hands every rank the gradient of its own pairs; `all_reduce_gradients` sums them. BatchNorm layers
normalise over the whole batch too (`sync_batch_norm`: the ranks' sums are all-reduced, on gloo and
NCCL alike, where torch's SyncBatchNorm has no CPU kernel). What remains different from one process
is the order of floating-point sums.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import nn


def local_rows(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's pairs of a global batch: every `world`-th, from its rank on."""
    return rows[rank::world]


def gathered_rows(rows: np.ndarray, world: int) -> np.ndarray:
    """A global batch's rows in the order `gather_batch` assembles them: rank 0's, then rank 1's, ..."""
    return np.concatenate([rows[r::world] for r in range(world)])


def gather_batch(local: torch.Tensor, world: int, global_size: int) -> torch.Tensor:
    """The whole batch [B,...] from every rank's `local` rows, with autograd (the backward sums the
    ranks' gradients of this rank's rows: with every rank's loss divided by the world, that is the
    one-process gradient)."""
    sizes = [len(range(r, global_size, world)) for r in range(world)]
    pad = max(sizes) - local.shape[0]  # all_gather needs equal shapes
    parts = dist_nn.all_gather(F.pad(local, (0, 0) * (local.dim() - 1) + (0, pad)))
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def all_reduce_gradients(params: list[nn.Parameter]) -> None:
    """Sum the gradients of `params` over the ranks, as one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_state(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (the same start, whatever each rank loaded)."""
    for t in module.state_dict().values():
        dist.broadcast(t, 0)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch of all ranks (same state_dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [b,C,H,W]
        if not self.training:
            return super().forward(x)
        c = x.shape[1]
        count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
        sums = dist_nn.all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))  # [C+1]
        n = sums[-1]
        mean = sums[:c] / n  # [C]
        centered = x - mean[None, :, None, None]  # two passes: no cancellation in the variance
        var = dist_nn.all_reduce((centered * centered).sum(dim=(0, 2, 3))) / n  # [C] biased, as BatchNorm normalises
        with torch.no_grad():  # running statistics: unbiased variance, as BatchNorm keeps them
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1).clamp_min(1), self.momentum)
        scale = self.weight / torch.sqrt(var + self.eps)  # [C]
        return centered * scale[None, :, None, None] + self.bias[None, :, None, None]


def sync_batch_norm(model: nn.Module) -> None:
    """Make every BatchNorm2d of `model` a GlobalBatchNorm2d in place (parameters and buffers kept)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            if not (module.affine and module.track_running_stats and module.momentum is not None):
                raise ValueError(f"{module}: only affine BatchNorm2d with running statistics and a momentum is supported")
            module.__class__ = GlobalBatchNorm2d

