"""Seeding: the same seed gives the same numbers on the CPU."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from avelib.runtime import deterministic_algorithms


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch; return a torch Generator seeded the same way (for loaders)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        deterministic_algorithms(warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def tower_run_seeds(seeds: tuple[int, ...], run: int) -> tuple[int, ...]:
    """The localizer seeds trained on tower run `run`: run 0 keeps `seeds`, run k takes the next block of as many.

    Seeds shared by every run would make the runs' seed draws one draw: where a side's features are the same in
    every run (the frozen towers with `pretrain.enabled: false`), a bootstrap over runs would then count its five
    seeds ten times and narrow the CI."""
    span = max(seeds) - min(seeds) + 1
    return tuple(s + run * span for s in seeds)
