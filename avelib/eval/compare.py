"""Another run against a reference: is every number inside the reference's 95 % CI, is every verdict the same?

Both runs are read through their headline numbers (avelib.eval.headline): each accuracy with its CI,
each paired difference with its CI and verdict. A number "holds" when this run's value lies inside
the reference run's CI; a verdict "holds" when it reads the same. Same machine and threads give the
same bytes; another machine is held to these two checks (README "Same conclusions on every machine").
A changed verdict is OPPOSITE when both runs resolve it with different winners, else CHANGED (one run
resolves it, the other does not).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from avelib.eval.headline import headline
from avelib.eval.stats import ONE_TOWER_RUN
from avelib.io import read_json

RESULT_FILES = ("metrics.json", "baselines.json", "ablations.json", "weak.json", "crossmodal.json", "tower_runs.json",
                "machine.json")


@dataclass(frozen=True)
class Row:
    """One number or verdict of the reference run and this run."""

    name: str
    reference: Any
    this: Any
    inside_ci: bool | None  # numbers with a reference CI; None otherwise
    same: bool  # verdicts: the same text; numbers: inside the CI (or equal where there is no CI)
    present: bool = True  # False: the reference's run is not in this run's files (e.g. moved or renamed)


def _leaves(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The rows of a headline dict: the innermost mappings, by their dotted names."""
    for key, value in node.items():
        if isinstance(value, Mapping) and any(isinstance(v, Mapping) for v in value.values()):
            yield from _leaves(value, f"{prefix}{key}.")
        elif isinstance(value, Mapping):
            yield f"{prefix}{key}", value


def _ci_pairs(row: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Value key -> its (low, high) keys in a headline row."""
    pairs = {}
    for key in row:
        if key.endswith("ci_low"):
            value = key[: -len("ci_low")].rstrip("_") or "test_accuracy"
            pairs[value] = (key, key.replace("ci_low", "ci_high"))
    return pairs


def compare(reference: Mapping[str, Any], this: Mapping[str, Any]) -> list[Row]:
    """Every number and verdict of `reference` (a headline dict) against `this` one."""
    ours = dict(_leaves(this))
    rows = []
    for name, ref in _leaves(reference):
        if name not in ours:
            rows.append(Row(name, "(run)", None, None, False, present=False))
            continue
        mine = ours[name]
        cis = _ci_pairs(ref)
        for key, value in ref.items():
            if key.endswith(("ci_low", "ci_high")):
                continue
            other = mine.get(key)
            label = f"{name}.{key}"
            if isinstance(value, str) or key not in cis or ref[cis[key][0]] is None:
                rows.append(Row(label, value, other, None, other == value))
                continue
            low, high = ref[cis[key][0]], ref[cis[key][1]]
            inside = other is not None and low <= other <= high
            rows.append(Row(label, value, other, inside, inside))
    return rows


def committed_reports(ref: str = "HEAD", repo: str | Path = ".") -> Path:
    """The result files of commit `ref` in a temporary folder (git show)."""
    folder = Path(tempfile.mkdtemp(prefix="avelib-ref-"))
    for name in RESULT_FILES:
        shown = subprocess.run(["git", "show", f"{ref}:reports/{name}"], cwd=repo, capture_output=True)
        if shown.returncode == 0:
            (folder / name).write_bytes(shown.stdout)
    if not any(folder.iterdir()):
        raise FileNotFoundError(f"{ref}: no reports/*.json in that commit (git show failed)")
    return folder


def _text(x: Any) -> str:
    if isinstance(x, float):
        return f"{100 * x:+.2f}" if abs(x) < 1 else f"{x:.4g}"
    return "—" if x is None else str(x)


def report_lines(rows: list[Row]) -> list[str]:
    """A table of every row, then the counts; the verdicts that changed are marked."""
    lines = [f"{'number / verdict':<78} {'reference':>14} {'this run':>14} {'diff':>8}  check"]
    for r in rows:
        diff = (f"{100 * (r.this - r.reference):+.2f}" if isinstance(r.reference, float) and isinstance(r.this, float)
                else "")
        check = (("same" if r.same else "OPPOSITE" if _opposite(r) else "CHANGED") if r.inside_ci is None
                 else ("inside CI" if r.inside_ci else "OUTSIDE CI"))
        check = check if r.present else "absent in this run"
        lines.append(f"{r.name[:78]:<78} {_text(r.reference)[:14]:>14} {_text(r.this)[:14]:>14} {diff:>8}  {check}")
    verdicts = _verdicts(rows)
    numbers = [r for r in rows if r.inside_ci is not None]
    absent = [r.name for r in rows if not r.present]
    lines.append(f"verdicts: {sum(r.same for r in verdicts)} of {len(verdicts)} the same, "
                 f"{sum(map(_opposite, verdicts))} opposite (both resolved, one each way); numbers: "
                 f"{sum(r.inside_ci for r in numbers)} of {len(numbers)} inside the reference's 95 % CI "
                 "(accuracies in %, differences in points)")
    if absent:
        lines.append(f"runs of the reference absent from this run (not compared): {', '.join(absent)}")
    return lines


def _verdicts(rows: list[Row]) -> list[Row]:
    """The verdict rows present in both runs."""
    return [r for r in rows if r.present and isinstance(r.reference, str)]


def _opposite(row: Row) -> bool:
    """A changed verdict that both runs resolve: they name different winners (not resolved on one side is
    a weaker reading, not a contradiction)."""
    unresolved = ("not resolved", ONE_TOWER_RUN)
    return (not row.same and isinstance(row.this, str) and row.reference not in unresolved
            and row.this not in unresolved)


def changed_verdicts(rows: list[Row]) -> list[str]:
    """The verdicts present in both runs that differ (the exit status of compare-runs)."""
    return [r.name for r in _verdicts(rows) if not r.same]


def machine_line(reports: str | Path) -> str:
    """CPU, threads and torch of the run in `reports` (its machine.json, written by the report stage)."""
    path = Path(reports) / "machine.json"
    if not path.is_file():
        return "machine not recorded (no machine.json)"
    m = read_json(path)
    threads = (m.get("numerics") or {}).get("threads", "?")
    return f"{m.get('cpu', '?')}, {m.get('cpu cores', '?')} cores, {threads} threads, torch {m.get('torch', '?')}"


def compare_runs(reference_dir: str | Path, this_dir: str | Path) -> tuple[list[Row], list[str]]:
    rows = compare(headline(reference_dir), headline(this_dir))
    machines = [f"reference: {machine_line(reference_dir)}", f"this run:  {machine_line(this_dir)}"]
    return rows, machines + report_lines(rows)
