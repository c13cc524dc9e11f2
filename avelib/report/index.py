"""reports/index.html: the one page a reader opens first.

The page is self-contained and renders offline: one inline stylesheet (templates/style.css), no
scripts, no fonts, every plot inlined as a `data:` URI; the only links are relative ones to the
executed notebooks' HTML under reports/html/. It holds no build time, so rebuilding it from the same
inputs gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from avelib.eval.headline import headline
from avelib.io import atomic_path, write_json
from avelib.params import load_params, section
from avelib.predict import PredictDefaults
from avelib.report import blocks as B
from avelib.report import sections, tasks, towers
from avelib.report.environment import DEFAULT_PACKAGES, data_hashes, environment_info, timings_summary
from avelib.runtime import numerics_state


@dataclass(frozen=True)
class ReportConfig:
    """params.yaml section `report`: the index page and own-video inference defaults."""

    reports_dir: str = "reports"
    """Folder the pipeline writes its reports into (metrics.json, ablations.json, figures/, html/, ...)."""
    out: str = "reports/index.html"
    """The page written by `python -m avelib report`."""
    title: str = "AVE-CLIP reproduction"
    """Title of the index page."""
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    """Python packages whose installed versions the environment section lists."""
    predict: PredictDefaults = field(default_factory=PredictDefaults)
    """Defaults of `python -m avelib predict` (each overridable on the command line)."""


def report_config(params_path: str | Path = "params.yaml") -> ReportConfig:
    """The `report` section of params.yaml (defaults when the file or the section is absent)."""
    path = Path(params_path)
    if not path.is_file():
        return ReportConfig()
    params = load_params(path)
    return section(params, "report", ReportConfig) if "report" in params else ReportConfig()


def _section(id: str, title: str, blocks: list[B.Block]) -> dict[str, object]:
    return {"id": id, "title": title, "nav": title.split(" (")[0], "blocks": blocks}


def _timings(reports: Path) -> list[B.Block]:
    t = timings_summary(reports / "timings")
    if not t["stages"]:
        return [B.missing(reports / "timings" / "*.json")]
    rows = [[name, f"{s['seconds']:.1f}", f"{s['peak_rss_mib']:.0f}"] for name, s in t["stages"].items()]
    rows.append([B.cell("all stages", bold=True), f"{t['total_seconds']:.1f}", f"{t['max_peak_rss_mib']:.0f} (max)"])
    return [B.text("Wall time of each stage's last run and the peak RSS of its largest process (the stage "
                   "runner's record, reports/timings/; `dvc metrics diff` compares them across commits)."),
            B.table(["stage", "seconds", "peak RSS (MiB)"], rows, id="timings")]


def render_index(
    reports_dir: str | Path = "reports",
    params_path: str | Path = "params.yaml",
    lock_path: str | Path = "dvc.lock",
    out: str | Path = "reports/index.html",
    title: str = "AVE-CLIP reproduction",
    packages: Sequence[str] = DEFAULT_PACKAGES,
) -> str:
    """The index page as one HTML string (see `build_index`)."""
    reports, params_path, lock_path, out = Path(reports_dir), Path(params_path), Path(lock_path), Path(out)
    params = [B.pre(params_path.read_text())] if params_path.is_file() else [B.missing(params_path)]
    if not lock_path.is_file():
        lock = [B.missing(lock_path)]
    else:
        hashes = data_hashes(lock_path)
        lock = [B.table(["stage", "output", "md5", "size"], hashes, id="hashes")] if hashes else [
            B.na(f"{lock_path}: no stage outputs")]
    page = [
        _section("main", "Main result", sections.main_table(reports)),
        _section("ablations", "Ablations", sections.ablations(reports)),
        _section("weak", "Weakly supervised localization", tasks.weak(reports)),
        _section("crossmodal", "Cross-modality localization (A2V / V2A)", tasks.crossmodal(reports)),
        _section("stage-a", "Stage A: contrastive fine-tuning", sections.finetune(reports)),
        _section("tower-runs", "Tower runs: stage A and the tower comparisons across them", towers.tower_runs(reports)),
        _section("run", "Training curves and confusion matrix", sections.run_figures(reports)),
        _section("curves", "Other plots (reports/plots)", sections.plots(reports)),
        _section("figures", "Figures (confusion matrix, timelines, ...)", sections.figures(reports)),
        _section("notebooks", "Executed notebooks", sections.notebooks(reports, out)),
        _section("timings", "Stage timings and peak memory", _timings(reports)),
        _section("environment", "Environment", [B.table(["item", "value"], environment_info(packages).items())]),
        _section("params", f"Parameters ({params_path.name})", params),
        _section("hashes", "Data hashes (dvc.lock)", lock),
    ]
    return B.environment().get_template("index.html.j2").render(title=title, sections=page)


def build_index(
    reports_dir: str | Path = "reports",
    params_path: str | Path = "params.yaml",
    lock_path: str | Path = "dvc.lock",
    out: str | Path = "reports/index.html",
    title: str = "AVE-CLIP reproduction",
    packages: Sequence[str] = DEFAULT_PACKAGES,
) -> Path:
    """Write the self-contained, offline index page atomically; return its path."""
    page = render_index(reports_dir, params_path, lock_path, out, title, packages)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def write_report(cfg: ReportConfig, params_path: str | Path = "params.yaml", lock_path: str | Path = "dvc.lock",
                 reports_dir: str | Path | None = None, out: str | Path | None = None) -> Path:
    """The report stage: reports/timings.json, reports/headline.json (every test accuracy keyed by name, for
    `dvc metrics`), reports/machine.json (CPU, threads, package versions) and the index page."""
    reports = Path(reports_dir or cfg.reports_dir)
    write_json({**environment_info(cfg.packages), "numerics": numerics_state()}, reports / "machine.json")
    write_json(timings_summary(reports / "timings"), reports / "timings.json")
    write_json(headline(reports), reports / "headline.json")
    return build_index(reports, params_path, lock_path, out or cfg.out, cfg.title, cfg.packages)
