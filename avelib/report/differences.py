"""Every paired difference of a reports folder in one sign convention, with what its CI resamples.

The stages store a baseline's or an ablation variant's difference as `this run − full model`
(`vs_reference`) and a task comparison as `a − b` with `a` the setting AVE-CLIP proposes (supervised,
fine-tuned towers, learned, AVE-CLIP). Here every one reads **full model − other**: AVE-CLIP minus a
baseline, the full model minus an ablation variant, a task's `a` minus its `b`; positive means the full
model (or `a`) is higher. The comparison tables and the forest plot of both pages are drawn from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from avelib.eval.claims import FULL_MODEL, flipped, interval_text, p_text, points
from avelib.eval.loaders import load_ablations, load_baselines, read_mapping
from avelib.eval.stats import ONE_TOWER_RUN
from avelib.eval.tasks import verdict_text
from avelib.report import blocks as B
from avelib.viz.report import ForestRow, figure_to_data_uri, forest_plot

SUPERVISED, WEAK, CROSSMODAL = "Supervised localization", "Weakly supervised", "Cross-modality localization"
SIGN = ("Sign: full model − other throughout (AVE-CLIP − a baseline, the full model − an ablation variant, a task "
        "comparison's first-named setting − the second), in points of test accuracy; positive = the full model higher.")
VIDEOS_SEEDS = "test videos × seeds"  # what a run's CI and a paired difference resample (avelib.eval.stats)
MAKE_CONFIRM = "resolved by the tower-run study: run `make confirm`"
ABLATION_FILES = ("ablations.json", "ablation_encoder.json")  # the quick study's axes; the tower study's encoder axis


def resamples(tower_runs: int | None) -> str:
    """What the CI of a paired difference resamples (avelib.eval.stats): test videos and seeds, and the tower runs
    first where the difference is between tower sets over several runs."""
    if tower_runs and tower_runs > 1:
        return f"{tower_runs} tower runs, then {VIDEOS_SEEDS}"
    return VIDEOS_SEEDS + (" (one tower run)" if tower_runs == 1 else "")


@dataclass(frozen=True)
class Difference:
    """a − b on the same test videos, fractions of seconds correct."""

    task: str
    """SUPERVISED, WEAK or CROSSMODAL: the forest plot's panel."""
    a: str
    b: str
    difference: float
    ci: tuple[float, float]
    p_value: float
    verdict: str
    tower_runs: int | None = None
    """Tower runs a side where a and b read different tower sets (avelib.eval.stats.tower_difference)."""
    per_tower_run: tuple[float, ...] = ()

    @property
    def resamples(self) -> str:
        return resamples(self.tower_runs)

    @property
    def resolved(self) -> bool:
        return self.verdict.startswith("resolved")

    @property
    def short_verdict(self) -> str:
        """"resolved" (the sign says which side), "not resolved" or why it cannot be."""
        return "resolved" if self.resolved else self.verdict


def _turned(task: str, a: str, b: str, versus: Mapping[str, Any]) -> Difference:
    """A stored `vs_reference` (b − a) as a − b."""
    c = flipped(task, b, versus)
    return Difference(task, a, b, c.difference, c.ci, c.p_value, c.verdict, c.tower_runs,
                      tuple(-d for d in versus.get("per_tower_run", ())))


def _named(task: str, c: Mapping[str, Any]) -> Difference:
    return Difference(task, c["a"], c["b"], float(c["difference"]), (float(c["ci"][0]), float(c["ci"][1])),
                      float(c["p_value"]), verdict_text(c), c.get("tower_runs"), tuple(c.get("per_tower_run", ())))


def baseline_differences(folder: Path) -> list[Difference]:
    path = folder / "baselines.json"
    if not path.is_file():
        return []
    return [_turned(SUPERVISED, FULL_MODEL, str(b.get("label") or name), b["vs_reference"])
            for name, b in load_baselines(path).items() if b.get("vs_reference")]


def ablation_differences(folder: Path) -> list[Difference]:
    out = []
    for axis, variants in (a for name in ABLATION_FILES if (folder / name).is_file()
                           for a in load_ablations(folder / name).items()):
        full = next((f"full model ({v['name']})" for v in variants if v.get("is_full_model")), "full model")
        out += [_turned(SUPERVISED, full, f"ablation {axis}: {v['name']}", v["vs_reference"])
                for v in variants if v.get("vs_reference") and not v.get("is_full_model")]
    return out


def task_differences(folder: Path, name: str, task: str) -> list[Difference]:
    """The comparisons of weak.json or crossmodal.json (already a − b)."""
    path = folder / name
    return [_named(task, c) for c in read_mapping(path).get("comparisons", [])] if path.is_file() else []


def differences(folder: Path) -> list[Difference]:
    """Every paired difference of the result files in `folder` (a missing file contributes none)."""
    return [*baseline_differences(folder), *ablation_differences(folder),
            *task_differences(folder, "weak.json", WEAK), *task_differences(folder, "crossmodal.json", CROSSMODAL)]


def verdict_cell(verdict: str) -> B.Cell:
    """A verdict; one between tower sets of one run each says where it is resolved."""
    return B.cell(verdict, note=MAKE_CONFIRM) if verdict == ONE_TOWER_RUN else verdict


HEADER = ["a", "b", "a − b, points [95 % CI]", "CI resamples", "p", "verdict"]


def difference_table(diffs: Sequence[Difference], id: str | None = None, per_tower_run: bool = False) -> B.Block:
    """One row per difference; `per_tower_run` adds each tower run's a − b."""
    rows = [[d.a, d.b, interval_text(d.difference, d.ci), d.resamples, p_text(d.p_value), verdict_cell(d.verdict),
             *([", ".join(points(x) for x in d.per_tower_run)] if per_tower_run else [])] for d in diffs]
    return B.table([*HEADER, *(["a − b per tower run (points)"] if per_tower_run else [])], rows, id=id)


def forest(diffs: Iterable[Difference], caption: str) -> B.Block:
    """The forest plot of `diffs`: one panel per task, each difference with its 95 % CI."""
    panels: dict[str, list[ForestRow]] = {}
    for d in diffs:
        towers = f" [{d.tower_runs} tower run{'s' if d.tower_runs > 1 else ''}]" if d.tower_runs else ""
        row = (f"{d.a} − {d.b}{towers}", 100 * d.difference, 100 * d.ci[0], 100 * d.ci[1], d.resolved)
        panels.setdefault(d.task, []).append(row)
    fig = forest_plot(list(panels.items()), "full model − other, points (95 % CI)")
    return B.figure(figure_to_data_uri(fig), caption)


FOREST_CAPTION = (f"Every paired difference with its 95 % CI. {SIGN} Filled dot: the CI excludes 0 (resolved); "
                  "hollow: not resolved, or one tower run a side. The bars resample test videos and seeds; a "
                  "difference between tower sets over several tower runs resamples the tower runs too.")
