"""The sections of the tower-run study's page (reports/confirm/, `make confirm`): stage A per tower run
(tower_runs.json), the comparisons between tower sets with each run's difference (ablation_encoder.json,
weak.json, crossmodal.json) and stage A's recipe grid (recipe_grid.json)."""

from __future__ import annotations

from pathlib import Path

from avelib.eval.claims import interval_text
from avelib.eval.loaders import (ReportInputError, r1_difference_text, r1_text, read_mapping, stage_a_text, tower_run_rows,
                                 tower_runs_text)
from avelib.eval.tasks import verdict_text
from avelib.report import blocks as B
from avelib.report.blocks import Block
from avelib.report.differences import SIGN, Difference, difference_table, differences, forest
from avelib.viz.report import figure_to_data_uri
from avelib.viz.training import plot_stage_a_runs

CAPTION = ("Each tower run pretrains, fine-tunes (stage A) and extracts again with its seeds shifted by its number; "
           "pretraining R@1 is on the pretraining pool's validation clips (its own classes, clip-level pairs); stage A's "
           "R@1 is validation audio→image retrieval among every event second of the validation videos. R@1 CIs: 95 %, "
           "resampling those validation videos; across the runs, the runs and then the videos.")
COMPARISONS_CAPTION = ("Comparisons between tower sets pair run k with run k and resample the runs, then the seeds and "
                       "test videos, so their CIs include the towers' training; the bootstrap's standard error is "
                       "scaled by √(T/(T−1)) and read with Student-t quantiles on T−1 degrees of freedom, because "
                       "resampling a few runs understates their spread. With one run a side they read \"one tower "
                       f"run: not resolvable\". {SIGN}")
GRID_CAPTION = ("Stage A's recipe, chosen on validation (avelib.train.recipe_grid): each learning rate and set of trained "
                "layers fine-tunes the same initial towers and keeps its best epoch; the recipe whose kept epoch has the "
                "highest validation R@1 is kept. R@1 CIs: 95 %, resampling validation videos.")
SOURCES = ("ablation_encoder.json", "weak.json", "crossmodal.json")


def not_run(path: Path) -> Block:
    return B.na(f"not available: {path} missing; `make confirm` writes it")


def tower_differences(folder: Path) -> list[Difference]:
    """The differences between tower sets in `folder` (those over tower runs)."""
    return [d for d in differences(folder) if d.tower_runs is not None]


def answer(folder: Path) -> list[Block]:
    """The study's answer, first: stage A's gain across the tower runs and each comparison between tower sets."""
    path = folder / "tower_runs.json"
    across = read_mapping(path).get("kept_minus_start") if path.is_file() else None
    lines = [("Stage A, kept − start:", f"{r1_difference_text(across)} in validation R@1 over {across['tower_runs']} "
              f"tower runs, {verdict_text({'a': 'kept', 'b': 'start', 'verdict': across['verdict']})}")] if across else []
    lines += [(f"{d.a} − {d.b}:", f"{interval_text(d.difference, d.ci)} points, {d.short_verdict}")
              for d in tower_differences(folder)]
    legend = ("Brackets: 95 % CIs over the tower runs, then test videos × seeds (stage A: then validation videos). "
              + SIGN)
    return [B.heading("The answer", "answer"), B.items(lines, "summary"), B.text(legend, "cap")] if lines else []


def tower_runs(folder: Path) -> list[Block]:
    """Stage A per tower run (table and R@1 curves), its gain across the runs, and the tower comparisons."""
    path = folder / "tower_runs.json"
    if not path.is_file():
        return [not_run(path), *comparisons(folder)]
    summary = read_mapping(path)
    try:
        rows = tower_run_rows(summary)
        fig = plot_stage_a_runs(summary)
        line = tower_runs_text(summary)
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"{path}: not a tower-runs summary (avelib.eval.results.stage_a_across_runs): {err!r}") from None
    return [B.text(CAPTION, "cap"), B.text(line),
            B.group([B.table(list(rows[0]), [list(r.values()) for r in rows], id="tower-runs"),
                     B.figure(figure_to_data_uri(fig), "Stage A per tower run: validation R@1 per epoch")], "row"),
            *comparisons(folder)]


def comparisons(folder: Path) -> list[Block]:
    """Every comparison between tower sets, with each tower run's difference; a note per missing file."""
    found = tower_differences(folder)
    notes = [not_run(folder / name) for name in SOURCES if not (folder / name).is_file()]
    table = [B.text(COMPARISONS_CAPTION, "cap"), difference_table(found, id="tower-comparisons", per_tower_run=True)]
    return [B.heading("Comparisons between tower sets", "tower-comparison-table"), *(table if found else []), *notes]


def tower_forest(folder: Path) -> list[Block]:
    """The forest plot of the tower comparisons (none: no blocks)."""
    found = tower_differences(folder)
    caption = (f"Every comparison between tower sets with its 95 % CI over the tower runs, then seeds and test videos. "
               f"{SIGN} Filled dot: the CI excludes 0 (resolved).")
    return [forest(found, caption)] if found else []


def recipe_grid(folder: Path) -> list[Block]:
    """Stage A's recipe grid: each recipe's kept epoch and validation R@1, and which was kept."""
    path = folder / "recipe_grid.json"
    if not path.is_file():
        return [not_run(path)]
    summary = read_mapping(path)
    try:
        line = stage_a_text(summary)
        rows = [[f"{g['lr']:g}", str(g["layers"]), str(g["kept_epoch"]), r1_text(g), "kept" if g["chosen"] else ""]
                for g in summary["grid"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"{path}: not a stage-A summary with its recipe grid (avelib.train.recipe_grid): "
                               f"{err!r}") from None
    header = ["learning rate", "trained layers", "kept epoch", "validation R@1 [95 % CI over validation videos]", "chosen"]
    return [B.text(GRID_CAPTION, "cap"), B.text(line), B.table(header, rows, id="recipe-grid")]
