"""Repository rules: environment files in sync, notebooks committed clean and parameterized."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _notebooks() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    tracked = [ROOT / p for p in out.stdout.split()] if out.returncode == 0 else []
    return tracked or sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert python == ["python=3.11"]
    assert sorted(pip) == sorted(deps)


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path: Path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; strip them before committing"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_is_thin_and_parameterized(path: Path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    for i, c in enumerate(cells):
        if c["cell_type"] == "code":
            n = len("".join(c["source"]).splitlines())
            assert n <= 25, f"{path.name}: code cell {i} has {n} lines; move logic into avelib"


# distribution name -> import name, where they differ
IMPORT_NAMES = {"pyyaml": "yaml", "pillow": "PIL", "ipython": "IPython", "jupyter-client": "jupyter_client",
                "vl-convert-python": "vl_convert"}
# declared for what they run, not for an import: the pipeline and notebook tools, pytest's plugins
TOOLS = {"dvc", "jupyterlab", "ipykernel", "pytest-timeout", "pytest-xdist"}


def _third_party_imports() -> set[str]:
    import ast
    import sys

    from avelib.pipeline import notebook_source

    sources = [p.read_text() for folder in ("avelib", "benchmarks", "tests") for p in (ROOT / folder).rglob("*.py")]
    sources += [notebook_source(p.stem) for p in (ROOT / "notebooks").glob("*.ipynb")]
    found: set[str] = set()
    for tree in map(ast.parse, sources):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    return {m for m in found if m not in sys.stdlib_module_names and m not in local | {"avelib", "tests"}}


def test_declared_dependencies_are_the_imported_ones():
    import re

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps}
    imported = _third_party_imports()
    as_import = {IMPORT_NAMES.get(d, d) for d in declared - TOOLS}
    assert not imported - as_import, f"imported but not declared in pyproject.toml: {sorted(imported - as_import)}"
    assert not as_import - imported, f"declared but never imported: {sorted(as_import - imported)}"


def test_pointers_to_readme_sections_name_real_headings():
    import re

    headings = {line.lstrip("#").strip() for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("#")}
    files = [ROOT / "params.yaml", ROOT / "Makefile", *(ROOT / "avelib").rglob("*.py")]
    cited = {(f.name, m) for f in files for m in re.findall(r'README "([^"]+)"', f.read_text())}
    assert cited, "the check sees the pointers"
    assert not [c for c in cited if c[1] not in headings], "README pointers to sections that do not exist"
