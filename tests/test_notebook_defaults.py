"""Jupyter's Run all: a stage notebook with nothing injected runs on its pipeline's own params.yaml and paths.

Its parameters cell binds `avelib.notebook.stage_defaults(<stage>)`: the keys and paths the stage runner passes,
read from the params.yaml at or above the working directory, with the kernel moved to that root (Jupyter starts
it in notebooks/). papermill's injected cell, after it, overrides them under the runner (tests/test_stage_notebooks.py).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from avelib import pipeline
from avelib.data.ave import load_dataset
from avelib.notebook import execute_notebook, stage_defaults
from avelib.params import load_params
from avelib.smoke import SMOKE, merge

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_STAGES = sorted({s.notebook for s in pipeline.STAGES if s.notebook})


def _parameters_cell(notebook: str) -> nbformat.NotebookNode:
    cells = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4).cells
    [cell] = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def _pipeline(root: Path, params: dict) -> Path:
    """A pipeline layout at `root`: params.yaml and an empty notebooks/, the Jupyter kernel's folder."""
    (root / "notebooks").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root / "notebooks"


def test_defaults_are_what_the_runner_passes_from_the_root(tmp_path, monkeypatch, capsys):
    params = load_params(ROOT / "params.yaml")
    monkeypatch.chdir(_pipeline(tmp_path, params))
    got = stage_defaults("ablate", "refine")
    entry = pipeline.stage("ablate")
    assert got == {"params": pipeline.stage_params(entry, params, "refine"), **pipeline.stage_paths(entry, "refine")}
    assert got["axis"] == "refine" and got["out"] == "reports/ablations/refine.json"
    assert Path.cwd() == tmp_path.resolve()
    assert f"working directory: {tmp_path.resolve()} (the pipeline root" in capsys.readouterr().out


def test_a_foreach_stage_without_item_takes_the_first_key_of_its_section(tmp_path, monkeypatch):
    params = load_params(ROOT / "params.yaml")
    params["ablations"] = {axis: params["ablations"][axis] for axis in ("modality", "refine")}
    monkeypatch.chdir(_pipeline(tmp_path, params))
    got = stage_defaults("ablate")
    assert got["axis"] == "modality" and got["params"]["ablations"] == {"modality": params["ablations"]["modality"]}


def test_at_the_root_the_kernel_stays_and_says_nothing(tmp_path, monkeypatch, capsys):
    _pipeline(tmp_path, {"data": {"root": "d"}, "decode": {"workers": 1}})
    monkeypatch.chdir(tmp_path)
    assert stage_defaults("decode") == {"params": {"data": {"root": "d"}, "decode": {"workers": 1}}}
    assert Path.cwd() == tmp_path.resolve() and capsys.readouterr().out == ""


def test_without_a_params_file_above_it_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"no params.yaml in {tmp_path.resolve()} or any folder above it"):
        stage_defaults("train")


@pytest.mark.parametrize("notebook", NOTEBOOK_STAGES)
def test_parameters_cell_binds_the_defaults_of_one_of_its_stages(notebook):
    """Run all binds exactly the names the runner injects: `params` and every path of the stage it names."""
    tree = ast.parse(_parameters_cell(notebook).source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "stage_defaults"]
    assert len(calls) == 1, f"{notebook}: its parameters cell calls stage_defaults once"
    name, *item = [a.value for a in calls[0].args]
    assert name in {s.name for s in pipeline.STAGES if s.notebook == notebook}, f"{notebook}: {name} is not its stage"
    subscripts = [n for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Subscript)]
    bound = {t.id: n.value.slice.value for n in subscripts for t in n.targets}
    paths = pipeline.stage_paths(pipeline.stage(name), *item)
    assert bound == {k: k for k in ("params", *paths)}, f"{notebook}: binds {sorted(bound)}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_all_in_jupyter_runs_the_pipelines_own_params(tmp_path):
    """01_data with no parameters, its kernel started in notebooks/ of a pipeline whose params.yaml is smoke-sized:
    the dataset of that file's size appears under the root, where the runner would write it."""
    params = merge(load_params(ROOT / "params.yaml"), SMOKE)
    notebooks = _pipeline(tmp_path, params)
    shutil.copy(ROOT / "notebooks" / "01_data.ipynb", notebooks)
    executed = tmp_path / "executed.ipynb"
    execute_notebook(notebooks / "01_data.ipynb", executed, {}, cwd=notebooks, execution_timeout=240)
    dataset = load_dataset(tmp_path / params["data"]["root"])
    assert len(dataset.records) == SMOKE["synth"]["num_videos"]
    assert [p.name for p in notebooks.iterdir()] == ["01_data.ipynb"]  # nothing written beside the notebook
    cells = nbformat.read(executed, as_version=4).cells
    assert not [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    assert f"working directory: {tmp_path.resolve()}" in text
