"""reports/index.html: the one page a reader opens first (the quick study, `dvc repro`).

The page is self-contained and renders offline: one inline stylesheet (templates/style.css), no
scripts, no fonts, every plot inlined as a `data:` URI; the only links are relative ones: to the
executed notebooks' HTML under reports/html/ and to the tower-run study's page, confirm/index.html.
It reads nothing of the tower-run study (reports/confirm/), so `dvc repro` never waits on it. It holds no
build time, so rebuilding it from the same inputs gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from avelib.eval.headline import headline
from avelib.io import write_json
from avelib.report import blocks as B
from avelib.report import sections, tasks
from avelib.report.config import ReportConfig
from avelib.report.differences import FOREST_CAPTION, differences, forest
from avelib.report.environment import (DEFAULT_PACKAGES, data_hashes, environment_info, notebook_names, stale_stages,
                                       timings_summary)
from avelib.report.published import published
from avelib.report.summary import results_title, summary
from avelib.runtime import numerics_state

CONFIRM_PAGE = "confirm/index.html"  # under the reports folder (avelib.pipeline: the confirm tier's reports)
INTRO = ("AVE-CLIP (WACV 2023) reproduced with avelib. Every number of ours comes from the files under the reports "
         "folder and is measured on the dataset it names; published numbers (real AVE) have a table of their own.")


def _timings(reports: Path) -> list[B.Block]:
    t = timings_summary(reports / "timings")
    if not t["stages"]:
        return [B.missing(reports / "timings" / "*.json")]
    rows = [[name, f"{s['seconds']:.1f}", f"{s['peak_rss_mib']:.0f}"] for name, s in t["stages"].items()]
    rows.append([B.cell("all stages", bold=True), f"{t['total_seconds']:.1f}", f"{t['max_peak_rss_mib']:.0f} (max)"])
    return [B.text("Wall time of each stage's last run and the peak RSS of its largest process (the stage "
                   "runner's record, reports/timings/; `dvc metrics diff` compares them across commits)."),
            B.table(["stage", "seconds", "peak RSS (MiB)"], rows, id="timings")]


def _hashes(lock_path: Path) -> list[B.Block]:
    """The outputs' hashes of the stages dvc.yaml has, and which stale ones the lock still holds."""
    if not lock_path.is_file():
        return [B.missing(lock_path)]
    hashes, stale = data_hashes(lock_path), stale_stages(lock_path)
    out = [B.table(["stage", "output", "md5", "size"], hashes, id="hashes")] if hashes else [
        B.na(f"{lock_path}: no stage outputs")]
    return out + ([B.text(f"Left out: {', '.join(stale)}, in {lock_path.name} but no longer in dvc.yaml.", "cap")]
                  if stale else [])


def _confirm(out: Path, reports: Path) -> list[B.Block]:
    """One sentence on the tower-run study and the relative link to its page."""
    return [B.linked("The tower-run study answers whether fine-tuning the towers beats frozen towers beyond the "
                     "spread of the towers' own training, by repeating that training and resampling the runs. It also "
                     "holds every run on the frozen towers (the encoder axis's frozen variant, weak and cross-modal "
                     "localization on frozen towers): one tower run cannot compare tower sets. Its page,",
                     B.relative(reports / CONFIRM_PAGE, out), CONFIRM_PAGE, ", exists once `make confirm` has run.")]


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
    diffs = differences(reports)
    notebooks = notebook_names(lock_path) if lock_path.is_file() else []
    page = [
        B.section("main", "Results", results_title(reports), [*summary(reports), *sections.main_table(reports)]),
        B.section("published", "Published", "Published results (real AVE)", published()),
        B.section("differences", "Differences", "Paired differences (forest plot)",
                  [forest(diffs, FOREST_CAPTION)] if diffs else []),
        B.section("peer", "Peer protocol", "The peers' protocol: epoch chosen on test", sections.peer(reports)),
        B.section("ablations", "Ablations", "Ablations", sections.ablations(reports)),
        B.section("weak", "Weak", "Weakly supervised localization", tasks.weak(reports)),
        B.section("crossmodal", "Cross-modal", "Cross-modality localization (A2V / V2A)", tasks.crossmodal(reports)),
        B.section("stage-a", "Stage A", "Stage A: contrastive fine-tuning", sections.finetune(reports)),
        B.section("confirm", "Tower runs", "Tower-run study", _confirm(out, reports)),
        B.section("run", "Training", "Training curves and confusion matrix", sections.run_figures(reports)),
        B.section("curves", "Plots", "Other plots (reports/plots)", sections.plots(reports)),
        B.section("figures", "Figures", "Figures (reports/figures)", sections.figures(reports)),
        B.section("notebooks", "Notebooks", "Executed notebooks",
                  sections.notebooks(reports / "html", out, notebooks, "make repro")),
        B.section("timings", "Timings", "Stage timings and peak memory", _timings(reports)),
        B.section("environment", "Environment", "Environment",
                  [B.table(["item", "value"], environment_info(packages).items())]),
        B.section("params", "Parameters", f"Parameters ({params_path.name})", params),
        B.section("hashes", "Data hashes", "Data hashes (dvc.lock)", _hashes(lock_path)),
    ]
    return B.page_html(title, [B.text(INTRO, "meta")], page)


def build_index(
    reports_dir: str | Path = "reports",
    params_path: str | Path = "params.yaml",
    lock_path: str | Path = "dvc.lock",
    out: str | Path = "reports/index.html",
    title: str = "AVE-CLIP reproduction",
    packages: Sequence[str] = DEFAULT_PACKAGES,
) -> Path:
    """Write the self-contained, offline index page atomically; return its path."""
    return B.write_page(render_index(reports_dir, params_path, lock_path, out, title, packages), out)


def write_report(cfg: ReportConfig, params_path: str | Path = "params.yaml", lock_path: str | Path = "dvc.lock",
                 reports_dir: str | Path | None = None, out: str | Path | None = None) -> Path:
    """The report stage: reports/timings.json, reports/headline.json (every test accuracy keyed by name, for
    `dvc metrics`), reports/machine.json (CPU, threads, package versions) and the index page."""
    reports = Path(reports_dir or cfg.reports_dir)
    write_json({**environment_info(cfg.packages), "numerics": numerics_state()}, reports / "machine.json")
    write_json(timings_summary(reports / "timings"), reports / "timings.json")
    write_json(headline(reports), reports / "headline.json")
    return build_index(reports, params_path, lock_path, out or cfg.out, cfg.title, cfg.packages)
