"""`python -m avelib compare-runs`: every number against the reference CI, every verdict, exit 1 on a changed verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from avelib.__main__ import main
from avelib.eval.compare import Row, compare_runs, prediction_interval, report_lines, tower_spreads

REPORTS = Path(__file__).resolve().parents[1] / "reports"
FILES = ("metrics.json", "baselines.json", "ablations.json", "weak.json", "crossmodal.json")


def _copy(dst: Path) -> Path:
    dst.mkdir()
    for name in FILES:
        shutil.copy(REPORTS / name, dst / name)
    return dst


def test_a_run_against_itself_holds_everywhere(tmp_path, capsys):
    rows, lines = compare_runs(REPORTS, REPORTS)
    assert rows and all(r.same for r in rows)
    assert main(["compare-runs", str(REPORTS), "--this", str(REPORTS)]) == 0
    assert "OUTSIDE CI" not in capsys.readouterr().out


def test_a_moved_number_and_a_flipped_verdict_are_reported(tmp_path, capsys):
    this = _copy(tmp_path / "this")
    metrics = json.loads((this / "metrics.json").read_text())
    metrics["test_accuracy"]["mean"] = 0.999  # above the reference CI and the tower runs' spread
    (this / "metrics.json").write_text(json.dumps(metrics))
    baselines = json.loads((this / "baselines.json").read_text())
    versus = baselines["avel"]["vs_reference"]
    versus["verdict"] = "a" if versus["verdict"] != "a" else "b"
    (this / "baselines.json").write_text(json.dumps(baselines))
    assert main(["compare-runs", str(REPORTS), "--this", str(this)]) == 1
    out = capsys.readouterr().out
    moved = [line for line in out.splitlines() if line.startswith("main.aveclip.test_accuracy ")]
    assert moved and "OUTSIDE" in moved[0]
    flipped = [line for line in out.splitlines() if line.startswith("main.avel.minus_aveclip_verdict")]
    assert flipped and flipped[0].endswith(("CHANGED", "OPPOSITE"))


def test_a_verdict_resolved_the_other_way_is_opposite_not_only_changed():
    rows = [Row("a.minus_b_verdict", "a higher", "b higher", None, False),
            Row("c.minus_b_verdict", "c higher", "not resolved", None, False),
            Row("d.minus_b_verdict", "not resolved", "not resolved", None, True)]
    lines = report_lines(rows)
    assert [line.split()[-1] for line in lines[1:4]] == ["OPPOSITE", "CHANGED", "same"]
    assert lines[4].startswith("verdicts: 1 of 3 the same, 1 opposite (both resolved, one each way)")


def test_each_run_names_its_machine(tmp_path):
    this = _copy(tmp_path / "this")
    machine = {"cpu": "Test CPU 9000", "cpu generation": "family 26, model 2", "cpu cores": "2", "torch": "2.11.0",
               "numerics": {"threads": 2}}
    (this / "machine.json").write_text(json.dumps(machine))
    _, lines = compare_runs(tmp_path / "this", this)
    assert lines[0] == lines[1].replace("this run:  ", "reference: ")
    assert "Test CPU 9000 (family 26, model 2), 2 cores, 2 threads, torch 2.11.0" in lines[1]
    (this / "machine.json").unlink()
    assert "not recorded" in compare_runs(this, this)[1][0]


def test_a_run_absent_from_this_run_is_listed_not_counted(tmp_path, capsys):
    this = _copy(tmp_path / "this")
    baselines = json.loads((this / "baselines.json").read_text())
    del baselines["mlp"]
    (this / "baselines.json").write_text(json.dumps(baselines))
    assert main(["compare-runs", str(REPORTS), "--this", str(this)]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("main.mlp ")][0].endswith("absent in this run")
    assert "absent from this run (not compared): main.mlp" in out


def test_a_number_the_tower_study_has_is_held_to_its_spread_over_the_runs(tmp_path, capsys):
    """Another CPU family trains other towers: run 0's weak accuracy is judged by how it spreads over tower runs."""
    reference = _copy(tmp_path / "reference")
    weak = json.loads((reference / "weak.json").read_text())
    row = next(r for r in weak["runs"] if (r["model"], r["encoder"]) == ("aveclip", "finetuned"))
    mean = row["test_accuracy"]["mean"]
    runs = [mean + d for d in (-0.06, -0.03, 0.0, 0.03, 0.06)]
    (reference / "confirm").mkdir()
    (reference / "confirm" / "weak.json").write_text(json.dumps({**weak, "across_tower_runs": {"aveclip_finetuned": runs}}))
    low, high = prediction_interval(runs)
    assert low < mean - 0.06 and high > mean + 0.06  # wider than the runs themselves
    this = _copy(tmp_path / "this")
    row_this = next(r for r in json.loads((this / "weak.json").read_text())["runs"] if r["model"] == "aveclip")
    moved = row["test_accuracy_ci"]["ci"][1] + 0.01  # outside run 0's CI, inside the tower runs' spread
    assert moved < high
    weak_this = json.loads((this / "weak.json").read_text())
    for r in weak_this["runs"]:
        if (r["model"], r["encoder"]) == ("aveclip", "finetuned"):
            r["test_accuracy"]["mean"] = moved
    (this / "weak.json").write_text(json.dumps(weak_this))
    rows, _ = compare_runs(reference, this)
    held = next(r for r in rows if r.name == "weak.aveclip_finetuned.test_accuracy")
    assert held.inside_ci and held.interval == "tower-run PI"
    assert row_this and all(r.interval == "reference CI" for r in rows if r.name.startswith("main."))


def test_the_tower_studys_copy_of_a_run_0_number_is_held_to_the_same_spread(tmp_path):
    """reports/confirm repeats run 0's accuracies beside its means over the runs: the copy gets the runs' interval too."""
    reference = _copy(tmp_path / "reference")
    weak = json.loads((reference / "weak.json").read_text())
    mean = next(r for r in weak["runs"] if (r["model"], r["encoder"]) == ("aveclip", "finetuned"))["test_accuracy"]["mean"]
    (reference / "confirm").mkdir()
    runs = [mean + d for d in (-0.06, -0.03, 0.0, 0.03, 0.06)]
    (reference / "confirm" / "weak.json").write_text(json.dumps({**weak, "across_tower_runs": {"aveclip_finetuned": runs}}))
    spreads = tower_spreads(reference)
    assert spreads["confirm.weak.aveclip_finetuned.test_accuracy"] == spreads["weak.aveclip_finetuned.test_accuracy"]
    this = _copy(tmp_path / "this")
    (this / "confirm").mkdir()
    (this / "confirm" / "weak.json").write_text((reference / "confirm" / "weak.json").read_text())
    rows, _ = compare_runs(reference, this)
    copy = next(r for r in rows if r.name == "confirm.weak.aveclip_finetuned.test_accuracy")
    assert copy.inside_ci and copy.interval == "tower-run PI"


def test_numbers_outside_a_shared_pretraining_study_get_a_note(tmp_path):
    """The reference's tower runs shared one pretraining: its intervals omit what another CPU's pretraining moves."""
    from avelib.eval.compare import pretraining_note

    reference = tmp_path / "reference"
    (reference / "confirm").mkdir(parents=True)
    (reference / "confirm" / "tower_runs.json").write_text(json.dumps({"pretraining_design": "shared"}))
    outside = [Row("main.aveclip.test_accuracy", 0.83, 0.78, False, False)]
    inside = [Row("main.aveclip.test_accuracy", 0.83, 0.82, True, True)]
    assert "tower_runs.pretraining: per_run" in pretraining_note(reference, outside)[0]
    assert pretraining_note(reference, inside) == []
    (reference / "confirm" / "tower_runs.json").write_text(json.dumps({"pretraining_design": "per_run"}))
    assert pretraining_note(reference, outside) == []
