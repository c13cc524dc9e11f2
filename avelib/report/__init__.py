"""The report pages, rendered with Jinja2 templates from the stages' result files: reports/index.html (the quick
study) and reports/confirm/index.html (the tower-run study).

`blocks` (what a page is made of), `sections`, `tasks`, `published`, `summary` and `differences` (the blocks of
the index page, from the result files), `towers` (those of the tower-run study), `environment` (machine and data
provenance), `index` and `confirm` (the two pages); the HTML is in `templates/`. The package imports nothing of
`confirm` and `towers`, so the quick study's report stage does not depend on the tower-run study's code. Each
name below is loaded on first use, so `config` (the `report` params section) imports none of the pages' code.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "ReportConfig": "avelib.report.config", "report_config": "avelib.report.config",
    "ReportInputError": "avelib.eval.loaders", "data_hashes": "avelib.report.environment",
    "build_index": "avelib.report.index", "render_index": "avelib.report.index",
    "ablation_table_html": "avelib.report.sections", "caption_from_name": "avelib.report.sections",
    "task_html": "avelib.report.tasks",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'avelib.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_NAMES[name]), name)
