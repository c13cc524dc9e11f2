"""reports/headline.json: every test accuracy of a run, with its 95 % CI and verdicts, keyed by name.

The result files keep their runs in lists (`runs`, `variants`, `comparisons`); DVC flattens nested
dicts but not lists, so `dvc metrics show`, `dvc metrics diff` and `dvc exp show` see only this file's
numbers: main[run], ablations[axis][variant], weak[model_encoder], crossmodal[encoder][method_task],
the paired comparisons[task]["a vs b"] (difference a - b) and stage A's kept − start across the tower
runs (stage_a, in validation R@1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avelib.io import read_json

Row = dict[str, Any]


def _accuracy(run: Mapping[str, Any], key: str = "test_accuracy") -> Row:
    ci = (run.get(f"{key}_ci") or {}).get("ci") or [None, None]
    return {"test_accuracy": run[key]["mean"], "ci_low": ci[0], "ci_high": ci[1]}


def _versus(comparison: Mapping[str, Any] | None, a: str, b: str) -> Row:
    """A paired difference (a - b), its 95 % CI and which side is higher ('not resolved' when the CI holds 0)."""
    if not comparison:
        return {}
    low, high = comparison["ci"]
    verdict = {"a": f"{a} higher", "b": f"{b} higher"}.get(comparison["verdict"], comparison["verdict"])
    return {"difference": comparison["difference"], "difference_ci_low": low, "difference_ci_high": high,
            "verdict": verdict}


def _peer(run: Mapping[str, Any]) -> Row:
    """The peers' protocol (epoch and L chosen on test) and its inflation over ours, where recorded."""
    selected = run.get("test_selected")
    if not selected:
        return {}
    low, high = selected["test_accuracy_ci"]["ci"]
    inflation = _versus(selected["inflation"], "test-selected", "validation-selected")
    return {"test_selected": selected["test_accuracy"]["mean"], "test_selected_ci_low": low, "test_selected_ci_high": high,
            **{k.replace("difference", "inflation") if "difference" in k else f"inflation_{k}": v
               for k, v in inflation.items()}}


def _main(reports: Path) -> dict[str, Row]:
    main = read_json(reports / "metrics.json")
    rows = {"aveclip": {**_accuracy(main), **_peer(main)}}
    for name, run in read_json(reports / "baselines.json").items():  # vs_reference: this run - AVE-CLIP
        versus = _versus(run.get("vs_reference"), name, "aveclip")
        rows[name] = {**_accuracy(run), **{f"minus_aveclip_{k}": v for k, v in versus.items()}, **_peer(run)}
    return rows


ABLATION_FILES = ("ablations.json", "ablation_encoder.json")  # the quick study's table; the tower study's encoder axis


def _ablations(path: Path) -> dict[str, dict[str, Row]]:
    axes: dict[str, dict[str, Row]] = {}
    for v in read_json(path)["variants"]:  # vs_reference: this variant - full model
        versus = {f"minus_full_{k}": x for k, x in _versus(v.get("vs_reference"), v["name"], "full model").items()}
        axes.setdefault(v["axis"], {})[v["name"]] = {**_accuracy(v), **versus}
    return axes


def _weak(summary: Mapping[str, Any]) -> dict[str, Row]:
    return {f"{r['model']}_{r['encoder']}": _accuracy(r) for r in summary["runs"]}


def _crossmodal(summary: Mapping[str, Any]) -> dict[str, dict[str, Row]]:
    out: dict[str, dict[str, Row]] = {}
    for encoder, res in summary["encoders"].items():
        rows = {"chance": {"test_accuracy": res["chance"]["accuracy"] if res["chance"] else None}}  # None: no scored video
        for method in ("zero_shot", "learned"):
            for task, r in (res.get(method) or {}).items():
                ci = r.get("ci") or [None, None]
                rows[f"{method}_{task}"] = {"test_accuracy": r["accuracy"]["mean"], "ci_low": ci[0], "ci_high": ci[1]}
        out[encoder] = rows
    return out


def _comparisons(summary: Mapping[str, Any]) -> dict[str, Row]:
    return {f"{c['a']} vs {c['b']}": _versus(c, "first", "second") for c in summary.get("comparisons", [])}


def headline(reports: str | Path) -> dict[str, Any]:
    """The headline numbers of the result files present under `reports` (a missing file leaves its part out):
    the quick study's `reports/` or the tower-run study's `reports/confirm/`."""
    reports = Path(reports)
    out: dict[str, Any] = {}
    if (reports / "metrics.json").is_file() and (reports / "baselines.json").is_file():
        out["main"] = _main(reports)
    for name in ABLATION_FILES:
        if (reports / name).is_file():
            out["ablations"] = _ablations(reports / name)
    comparisons = {}
    for task, rows in (("weak", _weak), ("crossmodal", _crossmodal)):
        if (reports / f"{task}.json").is_file():
            summary = read_json(reports / f"{task}.json")
            out[task] = rows(summary)
            comparisons[task] = _comparisons(summary)
    if comparisons:
        out["comparisons"] = comparisons
    if (reports / "tower_runs.json").is_file():  # stage A across the tower runs (validation R@1, not a test accuracy)
        across = read_json(reports / "tower_runs.json")["kept_minus_start"]
        out["stage_a"] = {"kept_minus_start": _versus(across, "kept", "start")}
    return out
