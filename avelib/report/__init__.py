"""The report: reports/index.html from the stages' result files, rendered with Jinja2 templates.

`blocks` (what a page is made of), `sections` (the blocks of each section, from the result files),
`environment` (machine and data provenance), `index` (the page); the HTML is in `templates/`.
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
