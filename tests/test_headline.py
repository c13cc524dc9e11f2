"""reports/headline.json keys every test accuracy by name, so DVC's metrics commands see them all."""

from __future__ import annotations

import json
from pathlib import Path

from avelib.eval.headline import headline

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def _scalars_only(node) -> bool:
    if isinstance(node, dict):
        return all(_scalars_only(v) for v in node.values())
    return isinstance(node, (int, float, str)) or node is None


def test_every_run_of_the_committed_reports_is_a_named_scalar():
    h = headline(REPORTS)
    assert _scalars_only(h), "no lists: DVC does not flatten them"
    metrics = json.loads((REPORTS / "metrics.json").read_text())
    assert h["main"]["aveclip"]["test_accuracy"] == metrics["test_accuracy"]["mean"]
    assert set(h["main"]) == {"aveclip", *json.loads((REPORTS / "baselines.json").read_text())}
    variants = json.loads((REPORTS / "ablations.json").read_text())["variants"]
    assert sum(len(v) for v in h["ablations"].values()) == len(variants)
    v = variants[0]
    assert h["ablations"][v["axis"]][v["name"]]["test_accuracy"] == v["test_accuracy"]["mean"]
    weak = json.loads((REPORTS / "weak.json").read_text())
    assert {f"{r['model']}_{r['encoder']}" for r in weak["runs"]} == set(h["weak"])
    assert len(h["comparisons"]["weak"]) == len(weak["comparisons"])
    assert set(h["crossmodal"]["finetuned"]) >= {"chance", "learned_a2v", "learned_v2a"}
    assert "stage_a" not in h  # stage A across the tower runs is the tower-run study's (reports/confirm/)
    confirm = REPORTS / "confirm" / "tower_runs.json"
    if confirm.is_file():
        across = json.loads(confirm.read_text())["kept_minus_start"]
        assert headline(REPORTS / "confirm")["stage_a"]["kept_minus_start"]["difference"] == across["difference"]


def test_a_verdict_names_the_higher_side(tmp_path):
    stat = {"mean": 0.8, "std": 0.0, "per_seed": [0.8]}
    run = {"test_accuracy": stat, "test_accuracy_ci": {"ci": [0.7, 0.9]}}
    (tmp_path / "metrics.json").write_text(json.dumps(run))
    versus = {"difference": -0.1, "ci": [-0.2, -0.05], "verdict": "b"}
    (tmp_path / "baselines.json").write_text(json.dumps({"avel": {**run, "vs_reference": versus}}))
    h = headline(tmp_path)
    assert h["main"]["avel"]["minus_aveclip_verdict"] == "aveclip higher" and set(h) == {"main"}


def test_a_split_without_scored_crossmodal_videos_gives_empty_rows(tmp_path):
    empty = {"videos": 0, "chance": None, "zero_shot": None, "learned": None}
    (tmp_path / "crossmodal.json").write_text(json.dumps({"encoders": {"finetuned": empty}, "comparisons": []}))
    assert headline(tmp_path) == {"crossmodal": {"finetuned": {"chance": {"test_accuracy": None}}},
                                  "comparisons": {"crossmodal": {}}}
