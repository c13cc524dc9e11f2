"""The two report pages' contents: one sign convention, the tower-run study's own page, what the quick study's page
reads (never the tower study's files), the current stages' hashes and notebooks, sections without figures left out."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from avelib.__main__ import main
from avelib.io import write_json
from avelib.report import build_index, render_index
from avelib.report.confirm import write_confirm_report
from avelib.report.differences import differences
from avelib.report.sections import overrides_words
from avelib.viz.report import plot_records
from test_report import make_complete_reports, make_fake_reports


def _cells(page: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of one table (tags dropped)."""
    start = page.index(f'id="{table_id}"')
    body = page[start : page.index("</table>", start)]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1])]


def test_one_sign_convention_across_tables_and_pages(tmp_path: Path) -> None:
    reports, params, lock = make_complete_reports(tmp_path)
    ablations = json.loads((reports / "ablations.json").read_text())
    encoder = json.loads((reports / "confirm" / "ablation_encoder.json").read_text())["variants"]
    write_json({"variants": ablations["variants"] + encoder}, reports / "ablations.json")
    stored = {d.b: d for d in differences(reports)}
    frozen = stored["ablation encoder: frozen"]
    assert frozen.difference == -encoder[0]["vs_reference"]["difference"]  # stored variant − full, shown full − variant
    baseline = json.loads((reports / "baselines.json").read_text())["avel"]["vs_reference"]
    assert stored["AVEL A+V-att (our harness)"].difference == -baseline["difference"]
    index = build_index(reports, params, lock, reports / "index.html").read_text()
    confirm = write_confirm_report(reports, reports / "confirm" / "index.html", tmp_path / "absent.lock").read_text()
    in_ablation_table = next(r[4] for r in _cells(index, "ablation-table-encoder") if r[0] == "frozen")
    in_tower_table = next(r[2] for r in _cells(confirm, "tower-comparisons") if r[1] == "ablation encoder: frozen")
    assert in_ablation_table.startswith(in_tower_table.split(" over")[0]), (in_ablation_table, in_tower_table)
    assert "CI over 2 tower runs, then test videos × seeds" in in_ablation_table  # what its CI resamples
    assert "full model − other" in index and "Paired differences (forest plot)" in index


def test_confirm_page_renders_what_exists_and_notes_what_does_not(tmp_path: Path) -> None:
    reports, _, _ = make_complete_reports(tmp_path)
    page = write_confirm_report(reports, reports / "confirm" / "index.html", tmp_path / "absent.lock").read_text()
    for anchor in ('id="tower-runs"', 'id="tower-comparisons"', 'id="recipe-grid"', 'id="answer"', 'href="../index.html"',
                   'id="weak-table"', 'id="crossmodal-table"'):
        assert anchor in page, anchor
    assert page.count("data:image/png;base64,") == 4  # stage A per tower run, the forest plot, weak and A2V examples
    (reports / "confirm" / "tower_runs.json").unlink()
    (reports / "confirm" / "recipe_grid.json").unlink()
    out = tmp_path / "site" / "confirm.html"
    assert main(["confirm-report", "--reports-dir", str(reports), "--out", str(out), "--lock", str(tmp_path / "x")]) == 0
    page = out.read_text()
    for name in ("tower_runs.json", "recipe_grid.json"):
        assert re.search(rf"not available: [^<]*confirm/{name} missing; `make confirm` writes it", page), name
    assert 'id="tower-comparisons"' in page  # the comparisons stand without stage A's runs
    shutil.rmtree(reports / "confirm")
    page = write_confirm_report(reports, reports / "confirm" / "index.html", tmp_path / "x").read_text()
    assert page.count("`make confirm` writes it") == 5 and "data:image/png" not in page


def test_index_reads_nothing_of_the_tower_study(tmp_path: Path) -> None:
    reports, params, lock = make_complete_reports(tmp_path)
    shutil.copy(reports / "confirm" / "tower_runs.json", reports / "tower_runs.json")  # as the last full run left it
    with_study = render_index(reports, params, lock, reports / "index.html")
    shutil.rmtree(reports / "confirm")
    (reports / "tower_runs.json").unlink()
    assert render_index(reports, params, lock, reports / "index.html") == with_study
    assert 'href="confirm/index.html"' in with_study and "exists once `make confirm` has run" in with_study


def test_hashes_and_notebooks_follow_the_current_dvc_yaml(tmp_path: Path) -> None:
    reports, params, lock = make_fake_reports(tmp_path)
    lock.write_text(
        "schema: '2.0'\nstages:\n"
        "  train:\n    outs:\n    - path: reports/html/06_train.html\n      md5: aaa\n      size: 1\n"
        "  ablate@refine:\n    outs:\n    - path: reports/html/localizer.html\n      md5: bbb\n      size: 2\n"
        "  ablations:\n    outs:\n    - path: reports/html/07_ablations.html\n      md5: ccc\n      size: 3\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: x\n  ablate:\n    foreach: [refine]\n    do:\n      cmd: y\n")
    page = build_index(reports, params, lock, reports / "index.html").read_text()
    hashes = _cells(page, "hashes")
    assert [r[0] for r in hashes] == ["train", "ablate@refine"]  # the stale `ablations` stage left out, and said so
    assert "Left out: ablations, in dvc.lock but no longer in dvc.yaml." in page
    notebooks = page[page.index('<section id="notebooks">') :]
    assert 'href="html/localizer.html"' in notebooks  # executed here: linked
    assert "<li>06_train.html</li>" in notebooks and 'href="html/06_train.html"' not in notebooks  # not yet: listed
    assert "`make repro` writes these" in notebooks and "07_ablations" not in notebooks


def test_sections_without_figures_are_left_out(tmp_path: Path) -> None:
    reports, params, lock = make_fake_reports(tmp_path)
    shutil.rmtree(reports / "figures")
    shutil.rmtree(reports / "plots")
    page = build_index(reports, params, lock, reports / "index.html").read_text()
    assert 'id="figures"' not in page and 'id="curves"' not in page and "figures/*.png" not in page
    assert "Training curves per seed against epoch (from metrics.json)" in page  # metrics.json's own history


def test_training_history_is_drawn_per_seed_against_epoch() -> None:
    records = [{"seed": s, "epoch": e, "loss": 1.0 / (e + 1)} for s in (0, 1) for e in range(3)]
    fig = plot_records(records, "history")
    lines = fig.axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines] == [[0.0, 1.0, 2.0]] * 2  # one line per seed, no sawtooth
    assert [line.get_label() for line in lines] == ["loss, seed 0", "loss, seed 1"]


def test_variant_overrides_in_words() -> None:
    assert overrides_words({"localizer": {"windows": [10, 5]}}) == "windows 10, 5"
    assert overrides_words({"localizer": {"refine": False}, "features": "frozen"}) == "refine off; features frozen"
    assert overrides_words({"evaluate": {"postprocess_candidates": [0]}}) == "postprocess candidates 0"
    assert overrides_words({"localizer.attention": "temporal"}) == "attention temporal"
    assert overrides_words({}) == "as in params.yaml"
