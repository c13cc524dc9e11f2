"""Run a stage notebook with papermill and render it to offline HTML.

A stage passes its params.yaml keys to the notebook as dict parameters, so the executed notebook
shows exactly what it ran with and booleans stay booleans. Kernels talk over IPC sockets with a
path of their own: over TCP, two kernels started at once (two test workers, two stages) could pick
the same free port and one client then waited forever on the other's kernel.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from avelib.io import atomic_path, write_json
from avelib.params import ParamsError, load_params, section
from avelib.runtime import peak_rss_mib

NOTEBOOKS = Path("notebooks")
REPORTS = Path("reports")
TIMINGS = "timings"  # reports/timings/<stage>.json: each stage's wall time, peak RSS and cell times
# nbconvert's templates load MathJax and require.js from a CDN; the reports must work offline.
_REMOTE_SCRIPT = re.compile(r'<script[^>]*\ssrc="(?:https?://[^"]*)?"[^>]*>\s*</script>', re.S)


KERNEL_START_TIMEOUT_S = 120  # a kernel that has not answered by then fails the stage with a message


class IPCKernelManager(AsyncKernelManager):
    """A kernel on IPC sockets under a fresh path: no port can be taken by another kernel."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        return str(Path(tempfile.gettempdir()) / f"avelib-kernel-{uuid.uuid4().hex}")


def execute_notebook(source: Path, executed: Path, parameters: dict[str, Any], cwd: Path,
                     execution_timeout: int | None = None) -> None:
    """papermill on an IPC kernel; a kernel that does not start in time raises instead of waiting."""
    import papermill

    papermill.execute_notebook(
        str(source), str(executed), parameters=parameters, kernel_name="python3", progress_bar=False,
        cwd=str(cwd), execution_timeout=execution_timeout, start_timeout=KERNEL_START_TIMEOUT_S,
        kernel_manager_class=IPCKernelManager,
    )


def section_parameters(params: dict[str, Any], sections: Iterable[str]) -> dict[str, Any]:
    """The named top-level sections of params.yaml, as notebook parameters."""
    missing = [s for s in sections if s not in params]
    if missing:
        raise ParamsError(f"params.yaml: section(s) {missing} missing")
    return {s: params[s] for s in sections}


def run_notebook(
    name: str,
    parameters: dict[str, Any],
    reports_dir: str | Path = "reports",
    notebooks_dir: str | Path = NOTEBOOKS,
    output_name: str | None = None,
    execution_timeout: int | None = None,
) -> Path:
    """Execute `notebooks/<name>.ipynb` with `parameters`; write the executed copy and its HTML.

    Returns the HTML path. Both outputs appear only if execution succeeds. `execution_timeout`
    (seconds per cell) turns a stuck kernel into an error; stages leave it unset (real runs are long).
    """
    source = Path(notebooks_dir) / f"{name}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: notebook not found")
    out_name = output_name or name
    executed = Path(reports_dir) / "notebooks" / f"{out_name}.ipynb"
    with atomic_path(executed) as tmp:
        execute_notebook(source, tmp, parameters, Path.cwd(), execution_timeout)
    html = Path(reports_dir) / "html" / f"{out_name}.html"
    with atomic_path(html) as tmp:
        tmp.write_text(notebook_html(executed))
    return html


def notebook_html(path: str | Path) -> str:
    """Render an executed notebook to a self-contained HTML page (images inline, no CDN)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(path), as_version=4)
    body, _ = HTMLExporter(embed_images=True, mathjax_url="", require_js_url="").from_notebook_node(nb)
    return _REMOTE_SCRIPT.sub("", body)


def run_stage(name: str, sections: list[str], params_path: str | Path = "params.yaml",
              extra: dict[str, Any] | None = None, output_name: str | None = None) -> Path:
    """A DVC stage: run notebook `name` with the listed params sections (plus `extra` values).

    The whole params file is checked first (`check_params`), so a typo anywhere in it stops the
    first stage, not the one that reads it hours later."""
    params = load_params(params_path)
    check_params(params)
    parameters = section_parameters(params, sections)
    parameters.update(extra or {})
    stage, start = output_name or name, time.perf_counter()
    html = run_notebook(name, parameters, output_name=output_name)
    timing = stage_timing(stage, time.perf_counter() - start, REPORTS / "notebooks" / f"{stage}.ipynb")
    write_json(timing, REPORTS / TIMINGS / f"{stage}.json")
    print(f"{timing['stage']}: {timing['seconds']:.1f} s, peak RSS {timing['peak_rss_mib']:.0f} MiB (largest process)")
    return html


def stage_timing(stage: str, seconds: float, executed: Path) -> dict[str, Any]:
    """A stage's wall time, peak RSS and the time of each notebook cell (papermill's per-cell record)."""
    import nbformat

    cells = []
    for cell in nbformat.read(str(executed), as_version=4).cells:
        took = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell.cell_type == "code" and took is not None:
            code = [line for line in cell.source.splitlines() if line.strip() and not line.startswith(("#", "from ", "import "))]
            first = code[0] if code else ""
            cells.append({"cell": first[:70], "seconds": round(float(took), 2)})
    return {"stage": stage, "seconds": round(seconds, 2), "peak_rss_mib": round(peak_rss_mib(), 1), "cells": cells}


TOP_LEVEL = ("seed",)  # plain values at the top of params.yaml


def check_params(params: Mapping[str, Any]) -> None:
    """Every section of params.yaml against its dataclass, before any stage works: an unknown key or
    section, or a value of the wrong type, raises ParamsError naming the dotted key and what it expects."""
    from avelib.data.cache import DataConfig, DecodeConfig
    from avelib.data.synth import SynthConfig
    from avelib.distributed import DistributedConfig
    from avelib.models.audioclip import AudioCLIPParams
    from avelib.models.localizer import LocalizerConfig
    from avelib.report import ReportConfig
    from avelib.train.ablations import variant_configs
    from avelib.train.contrastive import FinetuneConfig
    from avelib.train.distance import CrossmodalConfig
    from avelib.train.extract import ExtractConfig
    from avelib.train.localizer import EvalConfig, TrainConfig
    from avelib.train.pretrain import PretrainConfig
    from avelib.train.weak import WeakConfig

    sections = {"data": DataConfig, "synth": SynthConfig, "decode": DecodeConfig, "audioclip": AudioCLIPParams,
                "pretrain": PretrainConfig, "finetune": FinetuneConfig, "extract": ExtractConfig,
                "localizer": LocalizerConfig, "train": TrainConfig, "evaluate": EvalConfig, "distributed": DistributedConfig, "weak": WeakConfig,
                "crossmodal": CrossmodalConfig, "report": ReportConfig}
    unknown = sorted(set(params) - set(sections) - set(TOP_LEVEL) - {"ablations"})
    if unknown:
        raise ParamsError(f"params: unknown section(s) {unknown}; known: {sorted([*sections, 'ablations', *TOP_LEVEL])}")
    for name, cls in sections.items():
        if name in params:
            section(params, name, cls)
    base = {k: params.get(k) or {} for k in ("localizer", "train", "evaluate")}
    for axis, variants in (params.get("ablations") or {}).items():
        if not isinstance(variants, Mapping):
            raise ParamsError(f"ablations.{axis}: expected a mapping of variants, got {type(variants).__name__}")
        for name, overrides in variants.items():
            variant_configs(overrides or {}, base, f"ablations.{axis}.{name}")


def add_stage(sub: Any) -> None:
    """`python -m avelib stage NOTEBOOK --params SECTION...`: what each dvc.yaml stage runs."""
    p = sub.add_parser("stage", help="run a stage notebook with papermill (used by dvc.yaml)")
    p.add_argument("notebook", help="notebook name in notebooks/, without .ipynb")
    p.add_argument("--params", nargs="+", default=[], metavar="SECTION",
                   help="params.yaml sections passed to the notebook (the stage's `params:` list)")
    p.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                   help="extra string parameters (e.g. axis=windows)")
    p.add_argument("--output", default=None, help="name of the executed copy (default: the notebook's)")
    p.add_argument("--params-file", default="params.yaml")
    p.set_defaults(func=_stage)


def _stage(args: Any) -> int:
    extra = dict(_split_assignment(s) for s in args.set)
    html = run_stage(args.notebook, args.params, args.params_file, extra, args.output)
    print(f"wrote {html}")
    return 0


def _split_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise ValueError(f"--set {text!r}: expected NAME=VALUE")
    return name, value
