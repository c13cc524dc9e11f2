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
