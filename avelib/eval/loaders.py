"""Reading the stages' result files (reports/*.json) with errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.eval.claims import Comparison, ablation_comparisons, baseline_comparisons, p_text
from avelib.eval.results import RUN_LABELS
from avelib.eval.stats import direction
from avelib.io import read_json


class ReportInputError(ValueError):
    """A report input that exists but does not have the expected structure."""


def _stat(obj: Any, path: Path, where: str) -> dict[str, Any]:
    """A {mean, std, per_seed} statistic; raises naming the file when malformed."""
    if not isinstance(obj, Mapping) or "mean" not in obj:
        raise ReportInputError(f"{path}: '{where}' must be a mapping with 'mean' (and 'std', 'per_seed'), got {obj!r}")
    for key in ("mean", "std"):
        v = obj.get(key, 0.0)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ReportInputError(f"{path}: '{where}.{key}' must be a number, got {v!r}")
    per_seed = obj.get("per_seed", [])
    if not isinstance(per_seed, list):
        raise ReportInputError(f"{path}: '{where}.per_seed' must be a list, got {per_seed!r}")
    return {"mean": float(obj["mean"]), "std": float(obj.get("std", 0.0)), "per_seed": per_seed}


def read_mapping(path: Path) -> dict[str, Any]:
    data = read_json(path)  # raises ValueError naming the file on bad JSON
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    return data


def load_metrics(path: str | Path) -> dict[str, Any]:
    """reports/metrics.json, checked: dataset + test_accuracy (+ optional no-postprocess / val)."""
    path = Path(path)
    data = read_mapping(path)
    if not isinstance(data.get("dataset"), str):
        raise ReportInputError(f"{path}: 'dataset' must be a string naming the dataset, got {data.get('dataset')!r}")
    if "test_accuracy" not in data:
        raise ReportInputError(f"{path}: key 'test_accuracy' is missing")
    out = dict(data)
    for key in ("test_accuracy", "test_accuracy_no_postprocess", "val_accuracy"):
        if key in data:
            out[key] = _stat(data[key], path, key)
    return out


def load_baselines(path: str | Path) -> dict[str, dict[str, Any]]:
    """reports/baselines.json: {name: {test_accuracy, test_accuracy_no_postprocess, val_accuracy, label}}."""
    path = Path(path)
    data = read_mapping(path)
    out: dict[str, dict[str, Any]] = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping) or "test_accuracy" not in entry:
            raise ReportInputError(f"{path}: baseline '{name}' must be an object with 'test_accuracy'")
        row = dict(entry)
        for key in ("test_accuracy", "test_accuracy_no_postprocess", "val_accuracy"):
            if key in entry:
                row[key] = _stat(entry[key], path, f"{name}.{key}")
        out[name] = row
    return out


def load_ablations(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """reports/ablations.json grouped by axis, in file order: {axis: [variant, ...]}."""
    path = Path(path)
    data = read_mapping(path)
    variants = data.get("variants")
    if not isinstance(variants, list):
        raise ReportInputError(f"{path}: 'variants' must be a list")
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, v in enumerate(variants):
        if not isinstance(v, Mapping) or not isinstance(v.get("axis"), str) or not isinstance(v.get("name"), str):
            raise ReportInputError(f"{path}: variants[{i}] needs string 'axis' and 'name'")
        if "test_accuracy" not in v:
            raise ReportInputError(f"{path}: variants[{i}] ({v['axis']}/{v['name']}) lacks 'test_accuracy'")
        row = dict(v)
        for key in ("test_accuracy", "test_accuracy_no_postprocess", "val_accuracy"):
            if key in v:
                row[key] = _stat(v[key], path, f"variants[{i}].{key}")
        groups.setdefault(v["axis"], []).append(row)
    return groups


def main_table_runs(reports: str | Path) -> dict[str, dict[str, Any]]:
    """The main table's runs by label, from the files present: AVE-CLIP, its one-modality variants (the
    `modality` ablation axis) and the baselines."""
    reports = Path(reports)
    runs: dict[str, dict[str, Any]] = {}
    if (reports / "metrics.json").is_file():
        runs[RUN_LABELS["aveclip"]] = load_metrics(reports / "metrics.json")
    if (reports / "ablations.json").is_file():
        for v in load_ablations(reports / "ablations.json").get("modality", []):
            if not v.get("is_full_model"):
                runs[RUN_LABELS.get(f"aveclip_{v['name']}_only", f"AVE-CLIP, {v['name']}")] = v
    if (reports / "baselines.json").is_file():
        runs |= {str(b.get("label") or n): b for n, b in load_baselines(reports / "baselines.json").items()}
    return runs


def r1_text(entry: Mapping[str, Any] | None) -> str:
    """A validation R@1 with its CI, '0.247 [0.148, 0.345]'."""
    if not entry:
        return "—"
    lo, hi = entry["a2i_r1_ci"]
    return f"{entry['a2i_r1']:.3f} [{lo:.3f}, {hi:.3f}]"


def r1_difference_text(c: Mapping[str, Any] | None) -> str:
    """A difference of R@1 with its CI, '+0.174 [+0.095, +0.260]'."""
    return "—" if not c else f"{c['difference']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]"


def stage_a_text(summary: Mapping[str, Any]) -> str:
    """One line on stage A: the kept epoch's validation R@1 vs the start, paired (plain text)."""
    line = (f"Validation audio→image R@1 over {summary.get('val_pairs')} pairs of {summary.get('val_videos')} videos: "
            f"start (epoch 0) {r1_text(summary.get('start'))}, kept epoch {summary['kept_epoch']} {r1_text(summary['kept'])}")
    versus = summary.get("kept_minus_start")
    if summary["kept_epoch"] == 0:
        line += "; fine-tuning did not raise it, so the start was kept"
    elif versus:
        lo, hi = versus["ci"]
        verdict = {1: "fine-tuning helped (resolved)", -1: "fine-tuning hurt (resolved)", 0: "not resolved"}[direction((lo, hi))]
        line += f"; kept − start {versus['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}], p {p_text(versus['p_value'])}: {verdict}"
    runs = [f"lr {g['lr']:g}, {g['layers']}: epoch {g['kept_epoch']}, {r1_text(g)}" + (" (kept)" if g["chosen"] else "")
            for g in summary.get("grid") or []]
    return line + "." + (f" Recipe grid, each run's kept epoch: {'; '.join(runs)}." if runs else "")


def tower_runs_text(summary: Mapping[str, Any]) -> str:
    """One line on stage A across the tower runs (`reports/tower_runs.json`): each run's kept epoch and kept − start,
    and kept − start with the runs resampled (plain text)."""
    runs = [f"run {k}: epoch {r['kept_epoch']}, {r1_difference_text(r['kept_minus_start'])}"
            for k, r in enumerate(summary["runs"])]
    across = summary.get("kept_minus_start")
    verdict = "—" if not across else (
        f"{r1_difference_text(across)}, p {p_text(across['p_value'])}: "
        + {"a": "fine-tuning helped (resolved)", "b": "fine-tuning hurt (resolved)"}.get(across["verdict"], across["verdict"]))
    return (f"Stage A over {len(runs)} tower runs, kept epoch and kept − start in validation R@1 each: {'; '.join(runs)}. "
            f"Across the runs (runs, then validation videos resampled): {verdict}.")


def tower_run_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row of text cells per tower run (`reports/tower_runs.json`): its pretraining's kept epoch and R@1 on the
    pool's validation clips ("—" where pretraining is disabled), then stage A's kept epoch, start, kept, kept − start."""
    pretraining = summary.get("pretraining") or [None] * len(summary["runs"])
    return [{"tower run": str(k), "pretraining kept epoch": str(p["kept_epoch"]) if p else "—",
             "pretraining R@1 [95 % CI]": r1_text(p["kept"]) if p else "—", "kept epoch": str(r["kept_epoch"]),
             "start R@1 [95 % CI]": r1_text(r["start"]), "kept R@1 [95 % CI]": r1_text(r["kept"]),
             "kept − start [95 % CI]": r1_difference_text(r["kept_minus_start"])}
            for k, (r, p) in enumerate(zip(summary["runs"], pretraining))]


def load_comparisons(reports: str | Path) -> list[Comparison]:
    """Every comparison of a reports folder (files that are missing contribute none)."""
    reports = Path(reports)
    out: list[Comparison] = []
    if (reports / "baselines.json").is_file():
        out += baseline_comparisons(load_baselines(reports / "baselines.json"))
    if (reports / "ablations.json").is_file():
        out += ablation_comparisons(load_ablations(reports / "ablations.json"))
    return out
