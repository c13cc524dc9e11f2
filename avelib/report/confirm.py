"""reports/confirm/index.html: the tower-run study's page (`make confirm`, confirm/dvc.yaml).

Built like the index page (the same templates and style, self-contained and offline) from the study's
result files in reports/confirm/: tower_runs.json, recipe_grid.json, ablation_encoder.json, weak.json and
crossmodal.json; a missing file leaves its part out with a note.
"""

from __future__ import annotations

from pathlib import Path

from avelib.eval.headline import headline
from avelib.io import write_json
from avelib.report import blocks as B
from avelib.report import sections, tasks, towers
from avelib.report.environment import notebook_names

TITLE = "AVE-CLIP reproduction: tower-run study"
QUESTION = ("The quick study (`dvc repro`, reports/index.html) trains the towers once, so its comparisons between tower "
            "sets (frozen against fine-tuned towers) cannot tell a real difference from the spread of the towers' own "
            "training. This study repeats that training (pretraining and stage A) in several tower runs and resamples "
            "the runs: does fine-tuning the towers help, beyond that spread?")


def render_confirm(reports_dir: str | Path = "reports", out: str | Path = "reports/confirm/index.html",
                   lock_path: str | Path = "confirm/dvc.lock") -> str:
    """The tower-run study's page as one HTML string."""
    folder, out, lock_path = Path(reports_dir) / "confirm", Path(out), Path(lock_path)
    index = B.relative(Path(reports_dir) / "index.html", out)
    notebooks = notebook_names(lock_path) if lock_path.is_file() else []
    page = [
        B.section("tower-runs", "Tower runs", "Stage A per tower run and the comparisons between tower sets",
                  towers.tower_runs(folder)),
        B.section("tower-forest", "Forest plot", "Paired differences between tower sets (forest plot)",
                  towers.tower_forest(folder)),
        B.section("tasks", "Weak and cross-modal", "Weak and cross-modal localization of tower run 0, frozen towers "
                  "included (the quick study trains the fine-tuned towers only)",
                  [B.heading("Weakly supervised", "weak"), *tasks.weak(folder),
                   B.heading("Cross-modality", "crossmodal"), *tasks.crossmodal(folder)]),
        B.section("recipe-grid", "Recipe grid", "Stage A's recipe grid", towers.recipe_grid(folder)),
        B.section("notebooks", "Notebooks", "Executed notebooks",
                  sections.notebooks(folder / "html", out, notebooks, "make confirm")),
    ]
    intro = [B.text(QUESTION, "meta"), B.linked("The quick study's results:", index, "the index page", "."),
             *towers.answer(folder)]
    return B.page_html(TITLE, intro, page)


def write_confirm_report(reports_dir: str | Path = "reports", out: str | Path = "reports/confirm/index.html",
                         lock_path: str | Path = "confirm/dvc.lock") -> Path:
    """Write the tower-run study's page and its headline numbers (reports/confirm/headline.json, the study's DVC
    metrics) atomically; return the page's path."""
    folder = Path(reports_dir) / "confirm"
    write_json(headline(folder), folder / "headline.json")
    return B.write_page(render_confirm(reports_dir, out, lock_path), out)
