"""Resume points shared by the trainers.

A trainer writes `last.pt` after every finished epoch with `save_resume_point`: its state plus the
RNG states and the run's identity (resolved config, initial-weights and data fingerprints). A rerun
resumes only when `load_resume_point` finds the very same identity; anything else starts fresh, so a
resume never continues another run. Every file is written atomically (temp file, then rename), so a
kill leaves the previous resume point intact, never a half-written one.
"""

from __future__ import annotations

import hashlib
import pickle
import random
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avelib.io import atomic_path

LAST = "last.pt"


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save through a temp file and a rename."""
    with atomic_path(Path(path)) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path) -> Any:
    """torch.load(weights_only=True) on the CPU; a truncated, foreign or unsafe file raises naming it."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        asks = re.search(r"GLOBAL (\S+)", str(e))
        if asks:  # a class or function in the pickle (an unsafe or foreign file)
            raise ValueError(f"{path}: refused by torch.load(weights_only=True): it holds pickled objects other than "
                             f"tensors and plain containers ({asks.group(1)}); nothing in it was run") from None
        raise ValueError(f"{path}: not a readable torch checkpoint: torch.load(weights_only=True) refused it (a plain "
                         "pickle or another format); nothing in it was run") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable torch checkpoint (truncated or another format): {_first_line(e)}") from None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def weights_sha256(model: nn.Module) -> str:
    """Fingerprint of the weights, so a resume never continues from other initial weights."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def rng_states() -> dict[str, Any]:
    """torch, numpy (legacy global) and python RNG states, in a form weights_only loading accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [version, list(state), gauss],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    ns = states["numpy"]
    np.random.set_state((ns["name"], ns["keys"].numpy().astype(np.uint32), ns["pos"], ns["has_gauss"], ns["cached"]))
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_resume_point(path: str | Path, run: Mapping[str, Any], **state: Any) -> None:
    """`state` (epoch, weights, optimizer, history, ...) with the RNG states and the run identity."""
    save_torch(path, {"run": dict(run), "rng": rng_states(), **state})


def load_resume_point(path: str | Path, run: Mapping[str, Any], who: str) -> dict[str, Any] | None:
    """The state of `path` with the RNGs restored, when it was written by the same `run`; else None."""
    path = Path(path)
    if not path.is_file():
        return None
    state = load_torch(path)
    if not isinstance(state, dict) or state.get("run") != dict(run):
        print(f"{who}: {path} was made by another run (config, initial weights or data differ); starting fresh")
        return None
    restore_rng_states(state["rng"])
    return state
