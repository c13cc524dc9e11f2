"""notebooks/explore.ipynb: committed clean, runs top to bottom with papermill without pipeline outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from avelib.notebook import execute_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


def _text_outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(json.dumps(out.get("data", {})))
    return "\n".join(parts)


def test_notebook_is_committed_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "reports_dir" in tagged[0].source and "checkpoint" in tagged[0].source
    assert all(len(c.source.splitlines()) <= 25 for c in code), "cells stay thin: logic lives in avelib"


@pytest.mark.slow
def test_notebook_runs_without_pipeline_outputs(tmp_path: Path) -> None:
    # ablations present, every video input absent: the real-ablation path and the demo-video path both run
    reports = tmp_path / "reports"
    reports.mkdir()
    stat = {"mean": 0.7, "std": 0.01, "per_seed": [0.69, 0.71]}
    (reports / "ablations.json").write_text(json.dumps({"variants": [
        {"axis": "attention", "name": "both", "params": {}, "test_accuracy": stat},
        {"axis": "attention", "name": "temporal", "params": {}, "test_accuracy": stat},
    ]}))  # fmt: skip
    out = tmp_path / "explore.ipynb"
    execute_notebook(NOTEBOOK, out, {"reports_dir": str(reports), "data_root": str(tmp_path / "none"), "max_videos": 2},
                     cwd=tmp_path, execution_timeout=300)
    nb = nbformat.read(out, as_version=4)
    text = _text_outputs(nb)
    assert f"ablations from {reports / 'ablations.json'}" in text
    assert "not available:" in text and "MADE-UP DEMO" in text
    widgets = [o for c in nb.cells for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 4, "expected the two dropdowns and their output areas"


@pytest.mark.slow
def test_launched_in_notebooks_it_shows_the_pipeline_results(tmp_path: Path) -> None:
    """As the README launches it (`jupyter lab notebooks/explore.ipynb`): the kernel starts in notebooks/, the
    default paths are the pipeline root's, and the real ablation numbers appear, not the demo."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "notebooks").mkdir()
    real = json.loads((root / "reports" / "ablations.json").read_text())
    (tmp_path / "reports" / "ablations.json").write_text(json.dumps(real))
    out = tmp_path / "explore.ipynb"
    execute_notebook(NOTEBOOK, out, {"max_videos": 2}, cwd=tmp_path / "notebooks", execution_timeout=300)
    nb = nbformat.read(out, as_version=4)
    text = _text_outputs(nb)
    assert f"ablations from {tmp_path / 'reports' / 'ablations.json'}" in text and "ablations.json missing" not in text
    shown = json.dumps(nb.metadata.get("widgets", {}))  # the tables live in the Output widgets' saved state
    first = real["variants"][0]
    assert f"{100 * first['test_accuracy']['mean']:.2f}" in shown, "the real ablation numbers are shown"


def test_without_ablations_the_explorer_says_so_and_invents_nothing(tmp_path: Path) -> None:
    from avelib.explore import explore_ablations

    groups, note = explore_ablations(tmp_path)
    assert groups == {} and note.startswith(f"not available: {tmp_path / 'ablations.json'} missing")
