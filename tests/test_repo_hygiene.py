"""Repository rules: environment files in sync, notebooks committed clean and parameterized."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _notebooks() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    tracked = [ROOT / p for p in out.stdout.split()] if out.returncode == 0 else []
    return tracked or sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert python == ["python=3.11"]
    assert pip == ["-r requirements.lock"]


def _lock() -> list[Requirement]:
    """The pins of requirements.lock (a package may have one per Python-version marker)."""
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return [Requirement(line) for line in lines if line and not line.startswith((" ", "#"))]


def _locked() -> dict[str, list[str]]:
    """requirements.lock: canonical name -> every version pinned for it."""
    pins: dict[str, list[str]] = {}
    for req in _lock():
        pins.setdefault(canonicalize_name(req.name), []).append(str(req.specifier).removeprefix("=="))
    return pins


def test_the_lock_pins_every_dependency_inside_its_range():
    """`make lock` after a change to pyproject.toml's dependencies: a clone installs exactly these versions."""
    pins = _locked()
    for dep in map(Requirement, tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]):
        versions = pins.get(canonicalize_name(dep.name))
        assert versions, f"requirements.lock: no pin for {dep.name} (run `make lock`)"
        assert all(dep.specifier.contains(v) for v in versions), f"requirements.lock: {dep.name} {versions} outside {dep.specifier}"


def test_the_environment_holds_the_locked_versions():
    """The results' bytes assume the locked versions (machine.json records them with each run)."""
    drift = []
    for req in (r for r in _lock() if r.marker is None or r.marker.evaluate()):
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            installed = "absent"
        if not req.specifier.contains(installed):
            drift.append(f"{req.name} {installed} (locked {req.specifier})")
    assert not drift, f"this environment differs from requirements.lock (make install fixes it): {drift}"


WITH_OUTPUTS = {"walkthrough.ipynb"}  # committed with its outputs, kept true by nbval (tests/test_walkthrough.py)


@pytest.mark.parametrize("path", [p for p in _notebooks() if p.name not in WITH_OUTPUTS], ids=lambda p: p.name)
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
TOOLS = {"dvc", "jupyterlab", "ipykernel", "pytest-timeout", "pytest-xdist", "nbval"}


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


# ---------------------------------------------------------------- the README and docs/ as users read them

README = ROOT / "README.md"
USER_PAGES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
DEVELOPMENT = ROOT / "docs" / "development.md"  # the one page about the checkout's surroundings (../shared)
README_MAX_LINES = 250
HEADLINE_LINES = 25
TASKS = ("Supervised localization", "Weakly supervised", "Cross-modal localization")
ACCURACY_WITH_CI = re.compile(r"\d+\.\d+ % \[\d+\.\d+, \d+\.\d+\]")
# files a link may name that `make repro` / `make confirm` write (not in a fresh clone)
WRITTEN_BY_A_RUN = {"reports/index.html", "reports/confirm/index.html"}
# a pointer from code into a page: README or docs/<page>.md, a space, then the section title in double quotes
POINTER = re.compile(r'(README|docs/[\w-]+\.md) "([^"]+)"')


def _without_code_blocks(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _headings(page: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in _without_code_blocks(page.read_text()).splitlines()
            if line.startswith("#")}


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_readme_is_short_and_leads_with_each_tasks_result():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    head = lines[:HEADLINE_LINES]
    missing = [t for t in TASKS if not any(t in line and ACCURACY_WITH_CI.search(line) for line in head)]
    assert not missing, f"the first {HEADLINE_LINES} lines of README.md give no number with a CI for {missing}"
    assert any("SynthAVE" in line for line in head), "the headline does not say which dataset it was measured on"


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_user_pages_name_no_issue_and_no_path_outside_the_clone(page: Path):
    text = page.read_text()
    assert not re.findall(r"\bissues?\s*#?\s*\d+", text, flags=re.I), "an issue number: say what it changed instead"
    assert str(ROOT.parent) not in text, "an absolute path of this machine"
    if page == DEVELOPMENT:
        return
    assert "../shared" not in text, "only docs/development.md may name ../shared"
    outside = [m for m in re.findall(r"(?:\.\./)+[\w./-]*", text)
               if ROOT not in [(page.parent / m).resolve(), *(page.parent / m).resolve().parents]]
    assert not outside, f"paths outside the clone: {outside}"


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path):
    links = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", _without_code_blocks(page.read_text()))
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        rel = target.relative_to(ROOT).as_posix() if ROOT in target.parents else None
        if rel in WRITTEN_BY_A_RUN:
            continue
        if rel is None or not target.is_file():
            broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in {_anchor(h) for h in _headings(target)}:
            broken.append(link)
    assert not broken, f"{page.name}: links to nothing: {broken}"


def _commands(page: Path) -> list[str]:
    """What a reader would type: each line of the page's bash blocks (continuations joined, comments dropped)
    and each inline code span."""
    text = page.read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [line.split(" #")[0].strip() for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`([^`\n]+)`", _without_code_blocks(text))
    return [line for line in lines if line and not line.startswith("#")]


def _has_key(params: dict, dotted: str) -> bool:
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_documented_command_names_what_exists(page: Path):
    """Each `python -m avelib` command parses with the real parser, each `-S key` of a `dvc exp run` is a
    params.yaml key, each `make` target is in the Makefile and each benchmark script exists. (The paper command
    and the release-chain command are also run: tests/test_paper_smoke.py, tests/test_release.py.)"""
    import shlex

    from avelib.__main__ import build_parser

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    wrong = []
    for command in _commands(page):
        if avelib := re.match(r"(?:\.venv/bin/)?python -m avelib (.+)", command):
            try:
                build_parser().parse_args(shlex.split(avelib[1]))
            except SystemExit:
                wrong.append(command)
        if "dvc exp run" in command:
            wrong += [k for k in re.findall(r"-S\s+'?~?([\w.]+)=", command) if not _has_key(params, k)]
        if command.startswith("make "):
            wrong += [t for t in command.split()[1:2] if t not in targets]
        wrong += [s for s in re.findall(r"benchmarks/[\w.-]+\.py", command) if not (ROOT / s).is_file()]
    assert not wrong, f"{page.name}: commands, params keys, make targets or scripts that do not exist: {wrong}"


def test_pointers_to_readme_sections_name_real_headings():
    """Code points readers at a page's section: README or docs/<page>.md, then the section's title in double
    quotes; each names a heading of that page."""
    files = [ROOT / "params.yaml", ROOT / "Makefile", *(ROOT / "avelib").rglob("*.py"), *(ROOT / "tests").glob("*.py"),
             *(ROOT / "benchmarks").glob("*.py")]
    cited = {(f.relative_to(ROOT).as_posix(), page, section)
             for f in files for page, section in POINTER.findall(f.read_text())}
    assert {page for _, page, _ in cited} > {"README"}, "the check sees the pointers, into the README and into docs/"
    wrong = [c for c in cited if not (ROOT / (c[1] if c[1] != "README" else "README.md")).is_file()
             or c[2] not in _headings(ROOT / (c[1] if c[1] != "README" else "README.md"))]
    assert not wrong, f"pointers to sections that do not exist (file, page, section): {wrong}"
