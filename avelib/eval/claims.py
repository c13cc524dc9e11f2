"""Which comparisons the results resolve: full model minus each other run, paired, with its 95 % CI.

Every row of `reports/baselines.json` and `reports/ablations.json` carries `vs_reference`, the paired
test difference run - full model (avelib.eval.stats.paired_difference). Here each is turned around to
read "full model minus other" and given a verdict: a claim ("AVE-CLIP beats AVEL", "refining helps")
stands only where the CI excludes zero; every other comparison reads "not resolved", and one between
tower sets resting on one tower run each reads "one tower run: not resolvable".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avelib.eval.stats import ONE_TOWER_RUN, direction

FULL_MODEL = "AVE-CLIP (ours)"
FULL_ROW = ["(full model)", "", ""]  # the comparison cells of the full model's own row


@dataclass(frozen=True)
class Comparison:
    """full - other on the same test videos (fractions of seconds correct)."""

    group: str
    """"baselines" or the ablation axis."""
    other: str
    """Label of the run compared with the full model."""
    difference: float
    ci: tuple[float, float]
    p_value: float
    tower_runs: int | None = None
    """Tower runs a side where the two runs read different tower sets (avelib.eval.stats.tower_difference)."""

    @property
    def verdict(self) -> str:
        if self.tower_runs is not None and self.tower_runs < 2:
            return ONE_TOWER_RUN
        winner = direction(self.ci)
        if winner == 0:
            return "not resolved"
        return f"resolved: {'full model' if winner > 0 else self.other} higher"


def flipped(group: str, other: str, versus: Mapping[str, Any]) -> Comparison:
    """A Comparison from a `vs_reference` entry (other - full)."""
    lo, hi = versus["ci"]
    return Comparison(group, other, -float(versus["difference"]), (-float(hi), -float(lo)), float(versus["p_value"]),
                      versus.get("tower_runs"))


def baseline_comparisons(baselines: Mapping[str, Mapping[str, Any]]) -> list[Comparison]:
    """AVE-CLIP vs each baseline run of `reports/baselines.json` (entries without `vs_reference` skipped)."""
    return [flipped("baselines", str(b.get("label") or name), b["vs_reference"])
            for name, b in baselines.items() if b.get("vs_reference")]


def ablation_comparisons(axes: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Comparison]:
    """The full model vs each other variant of each axis (`load_ablations` layout)."""
    return [flipped(axis, str(v["name"]), v["vs_reference"])
            for axis, variants in axes.items() for v in variants
            if v.get("vs_reference") and not v.get("is_full_model")]


def points(x: float) -> str:
    """A fraction as signed percentage points, '+2.13'."""
    return f"{100 * x:+.2f}"


def difference_text(c: Comparison) -> str:
    """'+2.13 [+0.80, +3.40]' (percentage points, 95 % CI), with 'over 3 tower runs' where it spans several."""
    return interval_text(c.difference, c.ci, c.tower_runs)


def interval_text(difference: float, ci: Sequence[float], tower_runs: int | None = None) -> str:
    """A difference in points with its CI; one across several tower runs says so (its mean is over the runs,
    not the first run's accuracies printed beside it)."""
    runs = f" over {tower_runs} tower runs" if tower_runs and tower_runs > 1 else ""
    return f"{points(difference)} [{points(ci[0])}, {points(ci[1])}]{runs}"


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def ci_text(run: Mapping[str, Any]) -> str:
    """A run's test accuracy 95 % CI in percent, '[95.10, 98.30]'; '—' without one."""
    ci = run.get("test_accuracy_ci")
    return f"[{100 * ci['ci'][0]:.2f}, {100 * ci['ci'][1]:.2f}]" if ci else "—"


def versus_cells(group: str, other: str, run: Mapping[str, Any]) -> list[str]:
    """A table row's comparison cells: 'full - this [CI]', p, verdict ('—' without `vs_reference`)."""
    if not run.get("vs_reference"):
        return ["—", "—", "—"]
    c = flipped(group, other, run["vs_reference"])
    return [difference_text(c), p_text(c.p_value), c.verdict]
