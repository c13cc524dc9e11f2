"""The index section on the towers' training runs: stage A per tower run (reports/tower_runs.json) and every
comparison between tower sets, gathered from the files that hold them, with each run's difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avelib.eval.claims import points
from avelib.eval.loaders import ReportInputError, load_ablations, read_mapping, tower_run_rows, tower_runs_text
from avelib.eval.tasks import COMPARISON_HEADER, comparison_cells
from avelib.report import blocks as B
from avelib.report.blocks import Block
from avelib.viz.report import figure_to_data_uri
from avelib.viz.training import plot_stage_a_runs

CAPTION = ("Each tower run pretrains, fine-tunes (stage A) and extracts again with its seeds shifted by its number; "
           "pretraining R@1 is on the pretraining pool's validation clips (its own classes, clip-level pairs); stage A's "
           "R@1 is validation audio→image retrieval among every event second of the validation videos, CIs over "
           "those videos. Comparisons between tower sets pair run k with run k and resample the runs, then the "
           "seeds and test videos, so their CIs include the towers' training; the bootstrap's standard error is "
           "scaled by √(T/(T−1)) and read with Student-t quantiles on T−1 degrees of freedom, because resampling "
           "a few runs understates their spread. With one run a side they read \"one tower run: not resolvable\".")


def tower_comparisons(reports: Path) -> list[dict[str, Any]]:
    """Every comparison between or across tower sets in reports/ablations.json, weak.json and crossmodal.json
    (those carrying `tower_runs`), named a and b."""
    out: list[dict[str, Any]] = []
    if (reports / "ablations.json").is_file():
        for axis, variants in load_ablations(reports / "ablations.json").items():
            out += [{"a": f"AVE-CLIP, ablation {axis}: {v['name']}", "b": "AVE-CLIP (full model)", **v["vs_reference"]}
                    for v in variants if (v.get("vs_reference") or {}).get("tower_runs")]
    for name in ("weak.json", "crossmodal.json"):
        if (reports / name).is_file():
            out += [c for c in read_mapping(reports / name).get("comparisons", []) if "tower_runs" in c]
    return out


def tower_runs(reports: Path) -> list[Block]:
    """Stage A per tower run (table and R@1 curves), its gain across the runs, and the tower comparisons."""
    path = reports / "tower_runs.json"
    if not path.is_file():
        return [B.missing(path)]
    summary = read_mapping(path)
    try:
        rows = tower_run_rows(summary)
        fig = plot_stage_a_runs(summary)
        line = tower_runs_text(summary)
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"{path}: not a tower-runs summary (avelib.eval.results.stage_a_across_runs): {err!r}") from None
    comparisons = tower_comparisons(reports)
    table = B.table([*COMPARISON_HEADER, "per tower run (points)"],
                    [[*comparison_cells(c), ", ".join(points(d) for d in c.get("per_tower_run", []))] for c in comparisons],
                    id="tower-comparisons")
    return [B.text(CAPTION, "cap"), B.text(line),
            B.group([B.table(list(rows[0]), [list(r.values()) for r in rows], id="tower-runs"),
                     B.figure(figure_to_data_uri(fig), "Stage A per tower run: validation R@1 per epoch")], "row"),
            B.heading("Comparisons between tower sets", "tower-comparison-table"), table]
