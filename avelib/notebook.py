"""Run a stage notebook with papermill and render it to offline HTML.

A stage passes its params.yaml keys to the notebook as dict parameters, so the executed notebook
shows exactly what it ran with and booleans stay booleans. Kernels talk over IPC sockets with a
path of their own: over TCP, two kernels started at once (two test workers, two stages) could pick
the same free port and one client then waited forever on the other's kernel. Opened in Jupyter, with
nothing injected, a stage notebook's parameters cell takes the same values itself (`stage_defaults`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from avelib import pipeline
from avelib.io import atomic_path, write_json
from avelib.params import READS_ENV, ParamsError, load_params, section
from avelib.runtime import peak_rss_mib

NOTEBOOKS = Path("notebooks")
REPORTS = Path("reports")
TIMINGS = "timings"  # reports/timings/<stage>.json: each stage's wall time, peak RSS and cell times
# nbconvert's templates load MathJax and require.js from a CDN; the reports must work offline.
_REMOTE_SCRIPT = re.compile(r'<script[^>]*\ssrc="(?:https?://[^"]*)?"[^>]*>\s*</script>', re.S)


# jsonschema (under nbformat) builds ~40 grammar parsers at import when the optional rfc3987-syntax is installed
# (a jupyter-events extra) to check one URI format that no notebook uses: 1.2 s of every stage's start. Marked
# absent, it is skipped by jsonschema as it would be without the package; every other check stays.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

READS_DIR_ENV = "AVELIB_READS_DIR"
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
        # a Ctrl-C of the stage kills its kernel at once: a graceful shutdown let a busy cell run on for
        # seconds (the kernel has a session of its own, so the signal never reaches it) and finish the stage
        shutdown_kernel="immediate",
    )


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


PARAMS_FILE = "params.yaml"


def pipeline_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding params.yaml.

    Found from the working directory, not from avelib's location: a pipeline copy (the faults and
    paper-smoke tests, a user's second checkout) imports avelib from this checkout but is rooted elsewhere."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PARAMS_FILE).is_file():
            return folder
    raise FileNotFoundError(f"no {PARAMS_FILE} in {here} or any folder above it: start Jupyter inside the repository")


def stage_arguments(root: str | Path, name: str, item: str | None = None) -> dict[str, Any]:
    """What the stage runner passes stage `name` in the pipeline at `root`: `{"params": <its keys of
    root/params.yaml>, **<its path parameters>}` (the paths relative to `root`). A foreach stage runs `item`,
    or without it the first key of its params section (the notebook then runs whatever axes params.yaml has)."""
    entry = pipeline.stage(name)
    params = load_params(Path(root) / PARAMS_FILE)
    if entry.foreach and item is None:
        item = next(iter(params.get(entry.foreach) or {}), None)  # none: stage_params names the empty section
    return {"params": pipeline.stage_params(entry, params, item), **pipeline.stage_paths(entry, item)}


def stage_defaults(name: str, item: str | None = None) -> dict[str, Any]:
    """A stage notebook's parameters outside the runner (Jupyter's Run all): `stage_arguments` of the
    pipeline holding the working directory. The kernel moves to that root first, and says so: Jupyter
    starts it in notebooks/, the runner runs every stage from the root. papermill's injected cell comes
    after the parameters cell, so under the runner it overrides every value returned here."""
    root = pipeline_root()
    if root != Path.cwd().resolve():
        os.chdir(root)
        print(f"working directory: {root} (the pipeline root, where the stage runner runs this notebook)")
    return stage_arguments(root, name, item)


def run_stage(name: str, item: str | None = None, params_path: str | Path = "params.yaml",
              notebooks_dir: str | Path = NOTEBOOKS) -> Path:
    """A DVC stage of the table (avelib.pipeline): its notebook with exactly the stage's params keys as
    `params`, and its path parameters.

    The whole params file is checked first (`check_params`), so a typo anywhere in it stops the
    first stage, not the one that reads it hours later."""
    entry = pipeline.stage(name)
    if entry.notebook is None:
        raise ValueError(f"stage {name} runs `{entry.command}`, not a notebook")
    if (item is None) != (entry.foreach is None):
        raise ValueError(f"stage {name}: " + (f"give --item, a key of params section '{entry.foreach}'"
                                               if entry.foreach else "takes no --item"))
    params = load_params(params_path)
    check_params(params)
    return execute_stage(entry, item, params, pipeline.stage_paths(entry, item), Path(entry.reports_dir), notebooks_dir)


def execute_stage(entry: pipeline.Stage, item: str | None, params: Mapping[str, Any], paths: Mapping[str, str],
                  reports_dir: Path = REPORTS, notebooks_dir: str | Path = NOTEBOOKS) -> Path:
    """A notebook stage with the stage's keys of `params` and these path parameters; the executed notebook,
    its HTML and its timing go under `reports_dir`."""
    assert entry.notebook is not None
    parameters = {"params": pipeline.stage_params(entry, params, item), **paths}
    stage, start = entry.output_name(item), time.perf_counter()
    with _recording_reads(f"{entry.name}@{item}" if item else entry.name):  # two tiers may run one notebook
        html = run_notebook(entry.notebook, parameters, reports_dir, notebooks_dir, output_name=stage)
    timing = stage_timing(stage, time.perf_counter() - start, reports_dir / "notebooks" / f"{stage}.ipynb")
    write_json(timing, reports_dir / TIMINGS / f"{stage}.json")
    print(f"{timing['stage']}: {timing['seconds']:.1f} s, peak RSS {timing['peak_rss_mib']:.0f} MiB (largest process)")
    return html


@contextlib.contextmanager
def _recording_reads(stage: str) -> Iterator[None]:
    """With AVELIB_READS_DIR set, the stage's kernel (and its ranks) record the params keys they read
    in <dir>/<stage>.txt (avelib.params); tests compare them with the table."""
    folder = os.environ.get(READS_DIR_ENV)
    if not folder:
        yield
        return
    os.environ[READS_ENV] = str(Path(folder) / f"{stage}.txt")
    try:
        yield
    finally:
        del os.environ[READS_ENV]


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


def params_sections() -> dict[str, type]:
    """Each params.yaml section and its dataclass (`ablations` aside: variants of localizer, train, evaluate)."""
    from avelib.data.cache import DataConfig, DecodeConfig
    from avelib.data.synth import SynthConfig
    from avelib.distributed import DistributedConfig
    from avelib.models.audioclip import AudioCLIPParams
    from avelib.models.localizer import LocalizerConfig
    from avelib.report.config import ReportConfig
    from avelib.stages.tower_runs import TowerRunsConfig
    from avelib.train.contrastive import FinetuneConfig
    from avelib.train.distance import CrossmodalConfig
    from avelib.train.extract import ExtractConfig
    from avelib.train.localizer import BaselinesConfig, EvalConfig, TrainConfig
    from avelib.train.pretrain import PretrainConfig
    from avelib.train.recipe_grid import FinetuneGrid
    from avelib.train.weak import WeakConfig

    return {"data": DataConfig, "synth": SynthConfig, "decode": DecodeConfig, "audioclip": AudioCLIPParams,
            "pretrain": PretrainConfig, "finetune": FinetuneConfig, "finetune_grid": FinetuneGrid,
            "tower_runs": TowerRunsConfig, "extract": ExtractConfig,
            "localizer": LocalizerConfig, "train": TrainConfig, "evaluate": EvalConfig, "baselines": BaselinesConfig,
            "distributed": DistributedConfig, "weak": WeakConfig, "crossmodal": CrossmodalConfig, "report": ReportConfig}


def check_params(params: Mapping[str, Any]) -> None:
    """Every section of params.yaml against its dataclass, before any stage works: an unknown key or
    section, or a value of the wrong type, raises ParamsError naming the dotted key and what it expects."""
    from avelib.train.ablations import variant_configs

    sections = params_sections()
    unknown = sorted(set(params) - set(sections) - {"ablations"})
    if unknown:
        raise ParamsError(f"params: unknown section(s) {unknown}; known: {sorted([*sections, 'ablations'])}")
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
    """`python -m avelib stage NAME [--item KEY]`: what each dvc.yaml stage runs."""
    p = sub.add_parser("stage", help="run a stage of the table in avelib/pipeline.py (used by dvc.yaml)")
    p.add_argument("name", choices=[s.name for s in pipeline.STAGES if s.notebook], help="the stage")
    p.add_argument("--item", default=None, help="the key of a foreach stage (e.g. an ablation axis)")
    p.add_argument("--params-file", default="params.yaml")
    p.set_defaults(func=_stage)


def _stage(args: Any) -> int:
    print(f"wrote {run_stage(args.name, args.item, args.params_file)}")
    return 0


def add_dvc_yaml(sub: Any) -> None:
    """`python -m avelib dvc-yaml [--check]`: dvc.yaml and confirm/dvc.yaml from the stage table."""
    p = sub.add_parser("dvc-yaml", help="write dvc.yaml and confirm/dvc.yaml from the stage table in avelib/pipeline.py")
    p.add_argument("--root", type=Path, default=Path("."), help="the repository (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when a file is stale")
    p.set_defaults(func=_dvc_yaml)


def _dvc_yaml(args: Any) -> int:
    stale = 0
    for tier, (name, _) in pipeline.TIERS.items():
        path, text = args.root / name, pipeline.render_dvc_yaml(tier)
        current = path.is_file() and path.read_text() == text
        if args.check:
            print(f"{path}: {'current' if current else 'stale; run `python -m avelib dvc-yaml`'}")
        elif not current:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(text)
        if not args.check:
            print(f"{path}: {'already current' if current else 'written'}")
        stale += not current
    return 1 if args.check and stale else 0
