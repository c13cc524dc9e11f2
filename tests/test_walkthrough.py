"""notebooks/walkthrough.ipynb: committed with its outputs, and checked as CI checks it.

CI has no `make repro` models: a smoke-size pipeline is built in a temporary folder (avelib.smoke), and nbval
(`--nbval-lax`) runs the committed notebook on it: every cell must run, and the cells marked NBVAL_CHECK_OUTPUT
must print what is stored (checks whose text holds on any models). The walkthrough only reads the pipeline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import numpy as np
import pytest

from avelib import walkthrough
from avelib.smoke import build_models

ROOT = Path(__file__).resolve().parents[1]
CHECKED = "# NBVAL_CHECK_OUTPUT"


def _code_cells() -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(walkthrough.NOTEBOOK, as_version=4).cells if c.cell_type == "code"]


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_models(tmp_path_factory.mktemp("walkthrough") / "pipeline")


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_committed_with_outputs_saying_where_they_came_from():
    cells = _code_cells()
    assert all(c.execution_count and c.outputs for c in cells if "parameters" not in c.metadata.get("tags", []))
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
    checked = [c for c in cells if c.source.startswith(CHECKED)]
    assert len(checked) == 2 and all(c.outputs[0]["text"].rstrip().endswith(": yes") for c in checked)
    intro = nbformat.read(walkthrough.NOTEBOOK, as_version=4).cells[0].source
    assert f"{walkthrough.PROVENANCE} from " in intro, "run `python -m avelib.walkthrough execute [--smoke]`"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_nbval_on_smoke_models(smoke_root):
    before = _snapshot(smoke_root)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval-lax", "--nbval-current-env",
         "--nbval-sanitize-with", str(walkthrough.SANITIZE), str(walkthrough.NOTEBOOK)],
        cwd=ROOT, env={**os.environ, walkthrough.ROOT_ENV: str(smoke_root)}, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert f"{len(_code_cells())} passed" in run.stdout
    assert _snapshot(smoke_root) == before, "the walkthrough wrote into the pipeline it reads"


@pytest.mark.slow
def test_the_checks_fail_on_other_features_or_labels(smoke_root):
    w = walkthrough.load(smoke_root)
    assert walkthrough.features_check(w).endswith(": yes") and walkthrough.predictions_check(w).endswith(": yes")
    audio, visual = w.stored_features
    others = replace(w, stored_features=(audio, np.random.default_rng(0).normal(size=visual.shape)))
    assert ": NO: lowest cosine" in walkthrough.features_check(others)
    other = replace(w, stored_labels=np.where(w.stored_labels == 28, 0, 28))
    assert walkthrough.predictions_check(other).endswith(": NO: 10 of 10 seconds differ")


@pytest.mark.slow
def test_a_video_that_is_not_a_test_video_is_named(smoke_root):
    with pytest.raises(ValueError, match="no-such-video: not a decoded test video of"):
        walkthrough.load(smoke_root, "no-such-video")
