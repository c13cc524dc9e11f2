"""What a fine-tuning run writes and how a resume recognises it: the run record (config, initial
weights, data fingerprints), `best.pt`, `history.json` and the DVC plot files (avelib.train.contrastive)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from avelib.eval.results import write_finetune_plots
from avelib.io import write_json
from avelib.models.audioclip import save_checkpoint
from avelib.models.device import cpu_state
from avelib.params import resolved
from avelib.train.checkpointing import LAST

BEST = "best.pt"
HISTORY = "history.json"

# keys of the resolved config that do not change the numbers, so they may differ on resume
RESUME_INDIFFERENT = ("num_workers",)


def comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config without the keys that do not change the numbers."""
    fin = {k: v for k, v in config["finetune"].items() if k not in RESUME_INDIFFERENT}
    return {**config, "finetune": fin}


def data_fingerprint(cache: Any, labels: np.ndarray, train: np.ndarray, val: np.ndarray) -> dict[str, Any]:
    h = hashlib.sha256()
    for arr in (np.asarray(labels, dtype=np.int64), train, val, np.asarray(cache.ok, dtype=bool)):
        h.update(np.ascontiguousarray(arr).tobytes())
    return {
        "num_videos": int(len(labels)),
        "frames_per_second": int(cache.frames_per_second),
        "image_size": int(cache.image_size),
        "sample_rate": int(cache.sample_rate),
        "labels_splits_sha256": h.hexdigest(),
        "cache_sha256": cache.fingerprint(),
    }


def model_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    return resolved(config) if config is not None else type(model).__name__


def save_best(model: nn.Module, out_dir: Path, entry: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    # save_checkpoint writes atomically; extra = what was kept and why, with the resolved params
    save_checkpoint(model, out_dir / BEST, {"epoch": int(entry["epoch"]), "val": dict(entry), "params": dict(config)})


def load_best_state(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: best checkpoint missing although {path.parent / LAST} exists; delete {path.parent} to restart")
    loaded = type(model).from_checkpoint(path, config=getattr(model, "config", None))
    return cpu_state(loaded)


def write_outputs(out_dir: Path, history: list[dict[str, Any]], seconds: list[float], best: Mapping[str, Any],
                   config: Mapping[str, Any], recall_ks: tuple[int, ...], completed: bool) -> None:
    write_finetune_plots(out_dir, history, recall_ks)
    write_json(
        {
            "epochs": history,
            "best_epoch": int(best["epoch"]),
            "best_val_a2i_r1": float(best["a2i_r1"]),
            "chance": {k: v for k, v in best.items() if k.startswith("chance_")},
            "completed": completed,
            "seconds_per_epoch": seconds,
            "params": dict(config),
        },
        out_dir / HISTORY,
    )
