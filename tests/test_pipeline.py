"""The stage table (avelib/pipeline.py) is the one place a stage is defined: dvc.yaml is written from it,
each stage's notebook calls its entry, and its deps are exactly the files of the code it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from avelib import pipeline
from avelib.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_STAGES = [s for s in pipeline.STAGES if s.notebook]


@pytest.mark.parametrize("tier", pipeline.TIERS)
def test_committed_dvc_yaml_is_written_from_the_table(tier):
    path = ROOT / pipeline.TIERS[tier][0]
    assert path.read_text() == pipeline.render_dvc_yaml(tier), "run `python -m avelib dvc-yaml`"


def _written(entry: pipeline.Stage) -> set[str]:
    return {o.path for o in entry.outs} | set(entry.metrics) | set(entry.plots)


def test_no_quick_stage_reads_what_the_tower_run_study_writes():
    """A bare `dvc repro` stays quick: nothing of the quick tier depends on the tower-run study."""
    confirm = set().union(*(_written(s) for s in pipeline.STAGES if s.tier == pipeline.CONFIRM))
    for entry in (s for s in pipeline.STAGES if s.tier == pipeline.QUICK):
        read = set(entry.inputs)  # a features root holds the tower runs' folders too: `tower_runs.count` says which
        assert not {r for r in read for w in confirm if r == w or r.startswith(w + "/") or w.startswith(r + "/")}, entry.name
        assert not [k for k in entry.keys if k == "finetune_grid" or k.split(".")[0] == "tower_runs"], entry.name


def test_the_tower_run_study_writes_under_its_own_reports_folder():
    for entry in (s for s in pipeline.STAGES if s.tier == pipeline.CONFIRM):
        reports = [p for p in _written(entry) if p.startswith("reports/")]
        assert reports and all(p.startswith(pipeline.CONFIRM_REPORTS + "/") for p in reports), entry.name


@pytest.mark.parametrize("entry", NOTEBOOK_STAGES, ids=[s.name for s in NOTEBOOK_STAGES])
def test_notebook_calls_its_entry_with_the_stage_paths(entry):
    tree = ast.parse(pipeline.notebook_source(entry.notebook))
    module, function = entry.entry.split(":")
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == module for a in n.names}
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert function in imported and function in called, f"{entry.notebook} does not call {entry.entry}"
    assigned = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert {"params", *entry.paths} <= assigned, "the parameters cell names every path the runner passes"


def test_deps_are_files_never_a_package_folder():
    for entry in pipeline.STAGES:
        code = [d for d in pipeline.code_deps(entry) if d.startswith("avelib")]
        assert code and all((ROOT / d).is_file() for d in code), entry.name
        assert "avelib/pipeline.py" not in code and "avelib/notebook.py" not in code


def test_the_closure_follows_imports_inside_functions_and_packages():
    files = pipeline.import_closure({"avelib.stages.localizer"})
    assert "avelib/train/runs.py" in files and "avelib/eval/stats.py" in files  # `from avelib.eval import stats`
    assert "avelib/__init__.py" in files and "avelib/train/__init__.py" in files
    assert "avelib/models/audioclip.py" not in files  # the localizer stages never build the towers
    assert "avelib/train/localizer.py" not in pipeline.import_closure({"avelib.stages.pretrain"})


def test_every_listed_key_is_in_params_yaml():
    params = load_params(ROOT / "params.yaml")
    for entry in pipeline.STAGES:
        for item in params[entry.foreach] if entry.foreach else [None]:
            pipeline.stage_params(entry, params, item)  # raises on a key params.yaml does not have


def test_the_runner_passes_exactly_the_listed_keys():
    params = load_params(ROOT / "params.yaml")
    got = pipeline.stage_params(pipeline.stage("crossmodal"), params)
    assert got == {"data": params["data"], "crossmodal": params["crossmodal"],
                   "evaluate": {"seeds": params["evaluate"]["seeds"], "visual": params["evaluate"]["visual"]}}
    ablate = pipeline.stage_params(pipeline.stage("ablate"), params, "refine")
    assert ablate["ablations"] == {"refine": params["ablations"]["refine"]}
    with pytest.raises(ParamsError, match="'nope' is not a key"):
        pipeline.stage_params(pipeline.stage("ablate"), params, "nope")


def test_dvc_yaml_lists_the_table_keys_as_params():
    stages = {name: body for tier_file, _ in pipeline.TIERS.values()
              for name, body in yaml.safe_load((ROOT / tier_file).read_text())["stages"].items()}
    for entry in pipeline.STAGES:
        body = stages[entry.name]["do"] if entry.foreach else stages[entry.name]
        assert body.get("params", []) == [k.replace("{item}", "${key}") for k in entry.keys]


@pytest.mark.parametrize("read, covered", [("evaluate.seeds", True), ("evaluate", False), ("evaluatex.seeds", False),
                                           ("data.root", True), ("ablations.refine.off.localizer.refine", True)])
def test_a_read_is_covered_by_its_key_or_a_section_above(read, covered):
    assert pipeline.covers(("data", "evaluate.seeds", "ablations.refine"), read) is covered
