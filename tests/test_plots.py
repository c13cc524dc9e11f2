"""The offline `dvc plots show` template: no external URLs, works with the real DVC, renders in chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avelib.__main__ import main
from avelib.plots import write_template

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")  # the venv's dvc, beside the running python

# a resource the browser would fetch: <script src=...>, <link href=...>, <img src=...>, @import/url()
EXTERNAL_LOAD = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//""",
    re.IGNORECASE,
)


def _external_loads(html: str) -> list[str]:
    return [m.group(0) for m in EXTERNAL_LOAD.finditer(html)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated template shared by the tests of this module (bundling takes ~1 s)."""
    return write_template(tmp_path_factory.mktemp("tpl") / "sub" / "plots_template.html")


def test_template_is_offline(template: Path) -> None:
    html = template.read_text(encoding="utf-8")
    assert _external_loads(html) == []
    assert "cdn.jsdelivr" not in html
    assert "{plot_divs}" in html  # DVC refuses a template without it
    assert "{scripts}" not in html  # where DVC would put its CDN <script src> tags
    assert "window.vegaEmbed=" in html.replace(" ", "")
    assert len(html) > 100_000  # the libraries themselves, not a stub
    # the inline script must not be cut short: exactly one closing tag per opening tag
    assert html.lower().count("<script") == html.lower().count("</script") == 1


def test_cli_writes_template(tmp_path: Path, capsys) -> None:
    out = tmp_path / "plots_template.html"
    assert main(["plots-template", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert "{plot_divs}" in out.read_text(encoding="utf-8")


def test_repo_config_points_at_generated_template() -> None:
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"^\[plots\]\s*\n\s*html_template\s*=\s*plots_template\.html\s*$", config, re.MULTILINE)


def _dvc_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(DVC), "init", "-q"], cwd=repo, check=True)
    (repo / "loss.csv").write_text("step,loss\n0,1.00\n1,0.62\n2,0.41\n3,0.30\n")
    (repo / "dvc.yaml").write_text("plots:\n  - loss.csv:\n      x: step\n      y: loss\n")
    return repo


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Path:
    """`dvc plots show --html-template` over a tiny CSV in a fresh git+dvc repo; the page path."""
    if not DVC.is_file():
        pytest.skip(f"{DVC} is absent: dvc is not installed in this environment")
    repo = _dvc_repo(tmp_path_factory.mktemp("dvcplots"))
    run = subprocess.run(
        [str(DVC), "plots", "show", "--html-template", str(template), "-o", "out"],
        cwd=repo, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    page = repo / "out" / "index.html"
    assert page.is_file(), run.stdout + run.stderr
    return page


def test_dvc_plots_show_uses_offline_template(rendered: Path) -> None:
    html = rendered.read_text(encoding="utf-8")
    assert _external_loads(html) == []
    assert "cdn.jsdelivr" not in html
    assert "window.vegaEmbed=" in html.replace(" ", "")
    assert re.search(r'<div id\s*=\s*"loss_csv"', html)  # DVC's plot div for loss.csv
    assert "vegaEmbed('#loss_csv'" in html
    assert '"loss": "0.41"' in html or '"loss":"0.41"' in html  # the CSV rows are in the spec


def test_config_relative_path_is_resolved_from_dvc_dir(rendered: Path, template: Path) -> None:
    """`[plots] html_template = plots_template.html` means `.dvc/plots_template.html`, as in this repo."""
    repo = rendered.parents[1]  # the fixture's repo, now configured instead of given --html-template
    shutil.copyfile(template, repo / ".dvc" / "plots_template.html")
    with open(repo / ".dvc" / "config", "a") as f:
        f.write("[plots]\n    html_template = plots_template.html\n")
    run = subprocess.run([str(DVC), "plots", "show", "-o", "via_config"], cwd=repo, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    html = (repo / "via_config" / "index.html").read_text(encoding="utf-8")
    assert "window.vegaEmbed=" in html.replace(" ", "") and _external_loads(html) == []


def test_page_renders_in_headless_chromium(rendered: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed: skipping the headless render check (apt-get install chromium)")
    cmd = [
        chromium, "--headless", "--disable-gpu", "--no-sandbox",  # no-sandbox: tests may run as root
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
        "--dump-dom", rendered.as_uri(),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    # look only after the plot div: the inlined bundle itself mentions <svg>/<canvas> in strings
    start = dom.find('id="loss_csv"')
    assert start >= 0, "the plot div is missing from the rendered DOM"
    body = dom[start:]
    marks = re.search(r'<(svg|canvas)\b[^>]*class="marks"', body)
    assert marks, "vega drew nothing into the plot div"
    if marks.group(1) == "svg":  # vega-embed's default renderer: the axis titles are DOM text
        assert ">step</text>" in body and ">loss</text>" in body
