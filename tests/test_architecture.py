"""The layout of avelib: data flows one way, no import cycles, small modules, a listed public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import avelib

PACKAGE = Path(avelib.__file__).parent

# Lower layers never import higher ones (a module may import its own layer, without cycles).
LAYERS: list[set[str]] = [
    {"__init__", "runtime", "io", "params", "distributed"},  # foundation
    {"data"},
    {"models"},
    {"eval"},  # metrics, statistics and result files: used by the trainers, never using them
    {"train"},
    {"stages", "viz"},
    {"preflight", "fixtures", "plots", "captions", "predict"},
    {"explore", "report"},
    {"pipeline", "notebook", "release_chain", "__main__", "ranks"},  # the stage table and runners, the command line, the torchrun worker
    {"smoke", "walkthrough"},  # the pipeline in miniature (tests, CI) and the walkthrough notebook's steps, on the runners
]
MAX_LINES = 410


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: its top-level name '{top}' is in no layer of tests/test_architecture.py")


def _imports(path: Path) -> set[str]:
    """Every avelib module `path` imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("avelib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("avelib"):
            for a in node.names:  # `from avelib.eval import stats` imports the module avelib.eval.stats
                sub = f"{node.module}.{a.name}"
                found.add(sub if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                          or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else node.module)
    return found


GRAPH = {_module_name(p): _imports(p) - {_module_name(p)} for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_upward_import() -> None:
    upward = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
              for m, deps in GRAPH.items() for d in deps if _layer(d) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(GRAPH[m] & GRAPH.keys()):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in GRAPH:
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_modules_are_small() -> None:
    big = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_layer_test_sees_real_imports() -> None:
    assert "avelib.train.runs" in GRAPH["avelib.train.ablations"]
    assert "avelib.eval.stats" in GRAPH["avelib.train.runs"]  # `from avelib.eval import stats`
    assert _layer("avelib.eval.metrics") < _layer("avelib.train.localizer") < _layer("avelib.report.index")


@pytest.mark.parametrize("name", avelib.__all__)
def test_public_api_resolves(name: str) -> None:
    obj = getattr(avelib, name)
    assert obj is getattr(importlib.import_module(avelib.PUBLIC_API[name]), name)
