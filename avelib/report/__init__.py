"""The report pages, rendered with Jinja2 templates from the stages' result files: reports/index.html (the quick
study) and reports/confirm/index.html (the tower-run study).

`blocks` (what a page is made of), `sections`, `tasks`, `published`, `summary` and `differences` (the blocks of
the index page, from the result files), `towers` (those of the tower-run study), `environment` (machine and data
provenance), `index` and `confirm` (the two pages); the HTML is in `templates/`. The package imports nothing of
`confirm` and `towers`, so the quick study's report stage does not depend on the tower-run study's code.
"""

from avelib.eval.loaders import ReportInputError
from avelib.report.environment import data_hashes
from avelib.report.index import ReportConfig, build_index, render_index, report_config
from avelib.report.sections import ablation_table_html, caption_from_name
from avelib.report.tasks import task_html

__all__ = [
    "ReportConfig", "ReportInputError", "ablation_table_html", "build_index",
    "caption_from_name", "data_hashes", "render_index", "report_config", "task_html",
]  # fmt: skip
