"""The index sections of the weak and cross-modality tasks (reports/weak.json, reports/crossmodal.json):
our runs with CIs, the paired comparisons and one figure each (the published numbers are in their own table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from avelib.eval.loaders import ReportInputError, read_mapping
from avelib.eval.tasks import CROSSMODAL_HEADER, WEAK_HEADER, crossmodal_rows, weak_rows
from avelib.report import blocks as B
from avelib.report.blocks import Block
from avelib.report.differences import CROSSMODAL, SIGN, VIDEOS_SEEDS, WEAK, difference_table, task_differences
from avelib.viz.report import figure_to_data_uri
from avelib.viz.tasks import similarity_map, weak_score_curves

WEAK_CAPTION = ("Weakly supervised: training reads video-level labels only. Segment accuracy on the test split, "
                "mean ± std over seeds.")
CROSSMODAL_CAPTION = ("Cross-modality localization (AVEL's protocol): the event seconds of one modality slide over "
                      "the other's 10 seconds; correct only when the predicted start is exact. Test videos with an "
                      "event of 1-9 s; mean ± std over seeds (zero-shot: one deterministic run).")


def _load(path: Path, keys: Sequence[str]) -> dict[str, Any] | None:
    """The task's result file, None when its stage has not run; raises naming a missing key."""
    if not path.is_file():
        return None
    data = read_mapping(path)
    missing = [k for k in keys if k not in data]
    if missing:
        raise ReportInputError(f"{path}: missing key(s) {missing}; rerun its stage")
    return data


def weak(reports: Path) -> list[Block]:
    """The weak runs (threshold chosen on validation, fixed at 0.5, and AVEL's argmax rule), comparisons, curves."""
    path = reports / "weak.json"
    data = _load(path, ("runs", "comparisons", "dataset"))
    if data is None:
        return [B.missing(path)]
    ours = [[B.cell(r[0], bold=r[0].startswith("AVE-CLIP, weak")), *r[1:]] for r in weak_rows(data)]
    out = [B.text(f"{WEAK_CAPTION} Our runs: {data['dataset']}.", "cap"), B.text(str(data.get("protocol", ""))),
           B.table(B.ci_says(WEAK_HEADER, VIDEOS_SEEDS), ours, id="weak-table"),
           B.heading("Paired comparisons", "weak-comparisons"), B.text(SIGN, "cap"),
           difference_table(task_differences(reports, "weak.json", WEAK))]
    ex = data.get("example")
    if ex:
        fig = weak_score_curves(ex["probability"], ex["labels"], ex["threshold"])
        out.append(B.figure(figure_to_data_uri(fig), f"Weak AVE-CLIP, seed {ex['seed']}: first test videos"))
    return out


def crossmodal(reports: Path) -> list[Block]:
    """A2V / V2A per encoder and method, exact chance, comparisons, one similarity map."""
    path = reports / "crossmodal.json"
    data = _load(path, ("encoders", "comparisons", "dataset"))
    if data is None:
        return [B.missing(path)]
    out = [B.text(f"{CROSSMODAL_CAPTION} Dataset: {data['dataset']}.", "cap"),
           B.table(B.ci_says(CROSSMODAL_HEADER, VIDEOS_SEEDS), crossmodal_rows(data), id="crossmodal-table"),
           B.heading("Paired comparisons", "crossmodal-comparisons"), B.text(SIGN, "cap"),
           difference_table(task_differences(reports, "crossmodal.json", CROSSMODAL))]
    ex = next((r["example"] for r in data["encoders"].values() if r.get("example")), None)
    if ex:
        fig = similarity_map(ex["similarity"], ex["start"], ex["length"], ex["predicted_start"])
        out.append(B.figure(figure_to_data_uri(fig), f"A2V similarity map ({ex['method']}), test video row {ex['row']}"))
    return out


TASKS = {"weak": weak, "crossmodal": crossmodal}


def task_html(reports_dir: str | Path, task: str) -> str:
    """The index section of `task` (weak | crossmodal) as HTML (the explore notebook shows it)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    return "\n".join(B.render_block(b) for b in TASKS[task](Path(reports_dir)))
