"""Another run against a reference: is every number inside its interval, is every verdict the same?

Both runs are read through their headline numbers (avelib.eval.headline), of both tiers: each accuracy
with its CI, each paired difference with its CI and verdict. A number "holds" when this run's value lies
inside its interval; a verdict "holds" when it reads the same. Same machine and threads give the same
bytes; another machine is held to these two checks (docs/statistics.md).

Which interval: another CPU family trains other towers, as another tower seed would, so a number of tower
run 0 spreads as the tower runs do, which no CI of one run holds (its CI resamples videos and seeds). Where
the reference's tower-run study has that number on every tower run, it is held to their 95 % prediction
interval, mean ± t(T-1) · sd · sqrt(1 + 1/T), in the quick study's rows and in the study's own copies of them;
elsewhere to the reference's CI. Each row says which.
A changed verdict is OPPOSITE when both runs resolve it with different winners, else CHANGED (one run
resolves it, the other does not).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
from scipy.special import stdtrit

from avelib.eval.headline import headline
from avelib.eval.stats import CONFIDENCE, ONE_TOWER_RUN
from avelib.io import read_json

RESULT_FILES = ("metrics.json", "baselines.json", "ablations.json", "weak.json", "crossmodal.json", "machine.json")
CONFIRM = "confirm"  # the tower-run study's results, reports/confirm/ (its headline rows are named "confirm.*")
CONFIRM_FILES = tuple(f"{CONFIRM}/{name}.json" for name in ("tower_runs", "ablation_encoder", "weak", "crossmodal"))


# rows the tower-run study's headline repeats from run 0 (its other differences are means over the tower runs)
RUN0_IN_CONFIRM = (".test_accuracy", " vs chance.difference")
REFERENCE_CI = "reference CI"
TOWER_SPREAD = "tower-run PI"


@dataclass(frozen=True)
class Row:
    """One number or verdict of the reference run and this run."""

    name: str
    reference: Any
    this: Any
    inside_ci: bool | None  # numbers with a reference CI; None otherwise
    same: bool  # verdicts: the same text; numbers: inside the interval (or equal where there is none)
    present: bool = True  # False: the reference's run is not in this run's files (e.g. moved or renamed)
    interval: str = REFERENCE_CI  # numbers: which interval holds them (REFERENCE_CI or TOWER_SPREAD)


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


def prediction_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Where one more tower run's value falls: mean ± t(T-1) · sd · sqrt(1 + 1/T) over T runs' values."""
    x = np.asarray(values, dtype=np.float64)
    half = float(stdtrit(len(x) - 1, 0.5 + confidence / 2)) * float(x.std(ddof=1)) * np.sqrt(1 + 1 / len(x))
    return float(x.mean()) - half, float(x.mean()) + half


def _per_run_values(confirm: Path) -> dict[str, list[float]]:
    """Quick-study headline label -> that number on every tower run, from the tower-run study's files."""
    values: dict[str, list[float]] = {}

    def read(name: str) -> dict[str, Any]:
        return read_json(confirm / name) if (confirm / name).is_file() else {}

    for key, runs in read("weak.json").get("across_tower_runs", {}).items():
        values[f"weak.{key}.test_accuracy"] = runs
    crossmodal = read("crossmodal.json")
    for enc, methods in crossmodal.get("across_tower_runs", {}).items():
        chance = (crossmodal["encoders"][enc].get("chance") or {}).get("accuracy")
        for method_dir, runs in methods.items():
            values[f"crossmodal.{enc}.{method_dir}.test_accuracy"] = runs
            method, d = method_dir.rsplit("_", 1)
            if chance is not None:  # exact chance is the same on every run: the difference spreads as the accuracy
                values[f"comparisons.crossmodal.{d.upper()} {method} ({enc}) vs chance.difference"] = [r - chance for r in runs]
    for v in read("ablation_encoder.json").get("variants", []):
        if "across_tower_runs" in v:
            values[f"ablations.{v['axis']}.{v['name']}.test_accuracy"] = v["across_tower_runs"]
            if v["is_full_model"]:
                values["main.aveclip.test_accuracy"] = v["across_tower_runs"]
        if len((v.get("vs_reference") or {}).get("per_tower_run") or []) > 1:
            values[f"ablations.{v['axis']}.{v['name']}.minus_full_difference"] = v["vs_reference"]["per_tower_run"]
    for task in ("weak", "crossmodal"):
        for c in read(f"{task}.json").get("comparisons", []):
            if len(c.get("per_tower_run") or []) > 1:
                values[f"comparisons.{task}.{c['a']} vs {c['b']}.difference"] = c["per_tower_run"]
    return values


def tower_spreads(reports: str | Path) -> dict[str, tuple[float, float]]:
    """The prediction interval over the tower runs of each quick-study number the tower-run study has, and of
    the study's own copies of those run-0 numbers (RUN0_IN_CONFIRM)."""
    confirm = Path(reports) / CONFIRM
    spreads = {label: prediction_interval(runs) for label, runs in _per_run_values(confirm).items() if len(runs) > 2}
    copies = {f"{CONFIRM}.{label}": pi for label, pi in spreads.items() if label.endswith(RUN0_IN_CONFIRM)}
    return {**spreads, **copies}


def compare(reference: Mapping[str, Any], this: Mapping[str, Any],
            spreads: Mapping[str, tuple[float, float]] | None = None) -> list[Row]:
    """Every number and verdict of `reference` (a headline dict) against `this` one; a number with an entry in
    `spreads` (tower_spreads) is held to it instead of the reference's CI."""
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
            interval = REFERENCE_CI
            if label in (spreads or {}):
                (low, high), interval = spreads[label], TOWER_SPREAD
            inside = other is not None and low <= other <= high
            rows.append(Row(label, value, other, inside, inside, interval=interval))
    return rows


def committed_reports(ref: str = "HEAD", repo: str | Path = ".") -> Path:
    """The result files of commit `ref` in a temporary folder (git show)."""
    folder = Path(tempfile.mkdtemp(prefix="avelib-ref-"))
    (folder / CONFIRM).mkdir()
    for name in RESULT_FILES + CONFIRM_FILES:
        shown = subprocess.run(["git", "show", f"{ref}:reports/{name}"], cwd=repo, capture_output=True)
        if shown.returncode == 0:
            (folder / name).write_bytes(shown.stdout)
    if not any(f.is_file() for f in folder.rglob("*")):
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
                 else f"{'inside' if r.inside_ci else 'OUTSIDE'} {r.interval}")
        check = check if r.present else "absent in this run"
        lines.append(f"{r.name[:78]:<78} {_text(r.reference)[:14]:>14} {_text(r.this)[:14]:>14} {diff:>8}  {check}")
    verdicts = _verdicts(rows)
    numbers = [r for r in rows if r.inside_ci is not None]
    absent = [r.name for r in rows if not r.present]
    lines.append(f"verdicts: {sum(r.same for r in verdicts)} of {len(verdicts)} the same, "
                 f"{sum(map(_opposite, verdicts))} opposite (both resolved, one each way); numbers: "
                 f"{sum(r.inside_ci for r in numbers)} of {len(numbers)} inside their interval "
                 f"({sum(r.interval == TOWER_SPREAD for r in numbers)} held to the 95 % prediction interval over the "
                 "reference's tower runs, the rest to its 95 % CI; accuracies in %, differences in points)")
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
    cpu = m.get("cpu", "?") + (f" ({m['cpu generation']})" if m.get("cpu generation") else "")
    return f"{cpu}, {m.get('cpu cores', '?')} cores, {threads} threads, torch {m.get('torch', '?')}"


def both_tiers(reports: str | Path) -> dict[str, Any]:
    """The headline of the quick study in `reports` and, under "confirm", of the tower-run study where it ran."""
    study = headline(Path(reports) / CONFIRM) if (Path(reports) / CONFIRM).is_dir() else {}
    return {**headline(reports), **({CONFIRM: study} if study else {})}


def pretraining_note(reference_dir: str | Path, rows: list[Row]) -> list[str]:
    """Where numbers fall outside and the reference's tower runs shared one pretraining: why that may be no fault."""
    runs = Path(reference_dir) / CONFIRM / "tower_runs.json"
    shared = runs.is_file() and read_json(runs).get("pretraining_design") == "shared"
    if not shared or all(r.inside_ci is not False for r in rows):
        return []
    return ["note: the reference's tower runs share one pretraining (tower_runs.pretraining: shared), so its "
            "intervals leave out the pretraining's spread. Another CPU pretrains other towers on SynthAVE, so its "
            "numbers can fall outside them without a fault; a reference study with `tower_runs.pretraining: per_run` "
            "includes that spread in them (docs/statistics.md)."]


def compare_runs(reference_dir: str | Path, this_dir: str | Path) -> tuple[list[Row], list[str]]:
    rows = compare(both_tiers(reference_dir), both_tiers(this_dir), tower_spreads(reference_dir))
    machines = [f"reference: {machine_line(reference_dir)}", f"this run:  {machine_line(this_dir)}"]
    return rows, machines + report_lines(rows) + pretraining_note(reference_dir, rows)
