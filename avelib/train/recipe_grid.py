"""Stage A's own recipe, chosen on validation: a small grid of whole fine-tuning runs.

Each grid point fine-tunes the same initial towers with `finetune`'s learning rate and trained layers
replaced, in `<out_dir>/grid/<name>/` (resumable on its own). Each keeps its best epoch on validation
audio->image R@1, as stage A always does, so the schedule's length is searched along every run. The run
whose kept epoch scores highest (R@5 breaks ties, then the grid's order) is stage A's result: its files
are copied to `<out_dir>`, where the extract stage and the report read them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from torch import nn

from avelib.train.checkpointing import LAST
from avelib.train.contrastive import FinetuneConfig, FinetuneResult, finetune, selection_key
from avelib.train.finetune_record import BEST, HISTORY

PLOTS = "plots"


@dataclass(frozen=True)
class FinetuneGrid:
    """params.yaml section `finetune_grid`: a list replaces `finetune.lr` / `finetune.layers` (empty: that value)."""

    lr: tuple[float, ...] = (1e-4, 1e-5)
    """Peak learning rates tried."""
    layers: tuple[Literal["all", "heads"], ...] = ("all", "heads")
    """Trained layers tried (`finetune.layers`)."""


NO_GRID = FinetuneGrid(lr=(), layers=())  # `finetune` alone: one run


def recipes(cfg: FinetuneConfig, grid: FinetuneGrid) -> list[FinetuneConfig]:
    """The fine-tuning runs of the grid, in its order (one run, `cfg` itself, for an empty grid)."""
    return [replace(cfg, lr=lr, layers=layers) for lr in grid.lr or (cfg.lr,) for layers in grid.layers or (cfg.layers,)]


def recipe_name(cfg: FinetuneConfig) -> str:
    return f"lr{cfg.lr:g}_{cfg.layers}"


def kept_entry(result: FinetuneResult) -> dict[str, Any]:
    return next(h for h in result.history if h["epoch"] == result.best_epoch)


def run_grid(initial: Callable[[], nn.Module], cache: Any, labels: np.ndarray, splits: Any,
             configs: list[FinetuneConfig], out_dir: str | Path, progress: bool = True) -> FinetuneResult:
    """Fine-tune `initial()` once per config; the chosen run's result, its files copied to `out_dir`, with the
    grid's table: per run its lr, layers, kept epoch and that epoch's R@1 with its CI, and which was chosen."""
    out_dir = Path(out_dir)
    runs = [finetune(initial(), cache, labels, splits, c, out_dir / "grid" / recipe_name(c), progress=progress)
            for c in configs]
    keys = [selection_key(kept_entry(r), c.recall_ks) for r, c in zip(runs, configs)]
    chosen = keys.index(max(keys))  # the first of equals
    for name in (BEST, HISTORY, LAST):
        shutil.copy2(runs[chosen].out_dir / name, out_dir / name)
    shutil.copytree(runs[chosen].out_dir / PLOTS, out_dir / PLOTS, dirs_exist_ok=True)
    table = [{"lr": c.lr, "layers": c.layers, "kept_epoch": r.best_epoch, "a2i_r1": kept_entry(r)["a2i_r1"],
              "a2i_r1_ci": kept_entry(r).get("a2i_r1_ci"), "completed": r.completed, "chosen": i == chosen}
             for i, (c, r) in enumerate(zip(configs, runs))]
    return replace(runs[chosen], out_dir=out_dir, grid=table)


def mark_configured(table: list[dict[str, Any]], cfg: FinetuneConfig) -> list[dict[str, Any]]:
    """The grid's table with `configured` on the row of `cfg`'s lr and layers (the quick study's one recipe)."""
    return [{**row, "configured": row["lr"] == cfg.lr and row["layers"] == cfg.layers} for row in table]


def kept_recipe_line(table: list[dict[str, Any]]) -> str:
    """Whether validation keeps the configured recipe, in words; the fix when it does not."""
    kept = next(row for row in table if row["chosen"])
    recipe = f"lr {kept['lr']:g}, layers {kept['layers']}"
    if kept.get("configured"):
        return f"recipe grid: validation keeps {recipe}, the recipe of finetune.lr and finetune.layers (the quick study's)"
    return (f"recipe grid: validation keeps {recipe}, NOT the recipe of finetune.lr and finetune.layers that the quick "
            f"study trains: set those two keys in params.yaml to it and rerun `dvc repro`")
