"""What the report records of the machine and the data: versions, CPU/GPU and the dvc.lock hashes."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from avelib.eval.loaders import ReportInputError

DEFAULT_PACKAGES: tuple[str, ...] = (
    "torch", "numpy", "pandas", "av", "h5py", "einops", "torchmetrics",
    "matplotlib", "dvc", "papermill", "nbconvert", "ipywidgets",
)  # fmt: skip


def environment_info(packages: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Python, platform, CPU/GPU and package versions of the machine building the report."""
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_field("model name") or platform.processor() or platform.machine(),
        "cpu cores": str(os.cpu_count()),
    }
    if _cpu_field("cpu family"):  # a cloud's generic "AMD EPYC" hides the generation, whose kernels give other bits
        info["cpu generation"] = f"family {_cpu_field('cpu family')}, model {_cpu_field('model')}"
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        else:
            info["gpu"] = "none (CPU only)"
    except ImportError:
        info["torch"] = "not installed"
    for name in packages:
        try:
            info[f"package {name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[f"package {name}"] = "not installed"
    return info


def _cpu_field(name: str) -> str:
    """The first `name` field of /proc/cpuinfo ("" where there is none, e.g. not on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return ""


def _lock_stages(lock_path: Path) -> dict[str, Any]:
    """The `stages` mapping of a DVC 3 lock file."""
    try:
        lock = yaml.safe_load(lock_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReportInputError(f"{lock_path}: not valid YAML: {e}") from e
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        raise ReportInputError(f"{lock_path}: expected a 'stages' mapping (DVC 3 lock file)")
    return stages


def _declared(lock_path: Path) -> set[str] | None:
    """The stage names of the dvc.yaml beside the lock file (None without one)."""
    dvc_yaml = lock_path.with_name("dvc.yaml")
    if not dvc_yaml.is_file():
        return None
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    except yaml.YAMLError as e:
        raise ReportInputError(f"{dvc_yaml}: not valid YAML: {e}") from e
    return set(stages)


def stale_stages(lock_path: Path) -> list[str]:
    """Stages dvc.lock still holds that its dvc.yaml no longer has (DVC keeps them until they are removed)."""
    declared = _declared(lock_path)
    return [] if declared is None else [s for s in _lock_stages(lock_path) if s.split("@")[0] not in declared]


def data_hashes(lock_path: Path) -> list[tuple[str, str, str, str]]:
    """(stage, path, md5, size) of every output in dvc.lock of the stages its dvc.yaml has (`ablate@encoder`: a
    foreach item of `ablate`); every stage of the lock when no dvc.yaml is beside it."""
    stale = set(stale_stages(lock_path))
    rows = []
    for stage, body in _lock_stages(lock_path).items():
        if stage in stale:
            continue
        for out in (body or {}).get("outs", []) or []:
            if not isinstance(out, dict) or "path" not in out:
                raise ReportInputError(f"{lock_path}: stage '{stage}' has an out without 'path': {out!r}")
            size = out.get("size")
            extra = f"{size} B" + (f", {out['nfiles']} files" if "nfiles" in out else "") if size is not None else ""
            rows.append((str(stage), str(out["path"]), str(out.get("md5", out.get("hash", "—"))), extra))
    return rows


def notebook_names(lock_path: Path) -> list[str]:
    """The executed notebooks' pages (outs `.../html/<name>.html`) of the lock's current stages, by name."""
    return [Path(path).stem for _, path, _, _ in data_hashes(lock_path)
            if Path(path).suffix == ".html" and Path(path).parent.name == "html"]


def timings_summary(folder: Path) -> dict[str, object]:
    """`reports/timings.json`: each stage's wall time and peak RSS (from reports/timings/<stage>.json,
    written by the stage runner), their total and the largest peak; empty where no stage has run."""
    from avelib.eval.loaders import read_mapping

    stages = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        t = read_mapping(path)
        if not {"seconds", "peak_rss_mib"} <= t.keys():
            raise ReportInputError(f"{path}: a stage timing needs 'seconds' and 'peak_rss_mib'; rerun its stage")
        stages[path.stem] = {"seconds": t["seconds"], "peak_rss_mib": t["peak_rss_mib"]}
    return {"stages": stages, "total_seconds": round(sum(float(s["seconds"]) for s in stages.values()), 1),
            "max_peak_rss_mib": max((float(s["peak_rss_mib"]) for s in stages.values()), default=None)}
