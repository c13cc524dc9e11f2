"""Shared fixtures: the `../shared` folder beside the checkout (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: shared specs and fixtures are not available here")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for torch-heavy test modules: no oversubscription stalls on 2 cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
