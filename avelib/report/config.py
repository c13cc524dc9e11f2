"""params.yaml section `report`, in a module of its own: the stage runner checks every section before a stage
starts, without loading the pages' code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from avelib.params import load_params, section
from avelib.predict import PredictDefaults
from avelib.report.environment import DEFAULT_PACKAGES


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
