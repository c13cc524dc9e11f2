"""`python -m avelib release-chain`: the localizer stages on the AVE release's features, as every peer trains.

The release ships features, not videos, so the tower stages do not apply (each says why). The chain
converts the features once (avelib.data.release), then runs the notebook stages that apply through
the runner of dvc.yaml (avelib.notebook.execute_stage) with `data: {dataset: release, root: DIR}` and
every output under `out` (its own data/, models/ and reports/, never the DVC workspace's), and ends
with the index page. Each stage resumes like a DVC stage: rerunning after a kill continues it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml

from avelib import pipeline
from avelib.data.release import ENCODER, convert_release
from avelib.io import atomic_path
from avelib.params import ParamsError, load_params

STAGES = ("train", "evaluate", "ablate", "ablation_table", "weak", "crossmodal")
DOES_NOT_APPLY = {
    "data": "the release ships features, not videos",
    "decode": "there are no videos to decode",
    "pretrain": "its encoders, VGG19 and VGGish, were trained by their authors",
    "finetune": "its features are fixed, there are no towers to fine-tune",
    "extract": "its features are read instead, converted once into <out>/data/features/release",
}
_MOVED = ("data", "models", "reports")  # path parameters in these folders move under `out`


def axis_does_not_apply(variants: Mapping[str, Any]) -> str | None:
    """Why an ablation axis cannot run on the release's features (None: it can)."""
    for overrides in variants.values():
        if "features" in (overrides or {}):
            return "it compares tower sets; the release has one feature set"
        if ((overrides or {}).get("evaluate") or {}).get("visual") == "single":
            return "it needs the middle frame's features; the release has one VGG19 feature per second"
    return None


def release_params(params: Mapping[str, Any], release_dir: str | Path) -> dict[str, Any]:
    """`params` with the release as the dataset, and its one feature folder for the weak and cross-modal tasks."""
    out = copy.deepcopy(dict(params))
    out["data"] = {**(out.get("data") or {}), "dataset": "release", "root": str(release_dir)}
    for name in ("weak", "crossmodal"):
        out[name] = {**(out.get(name) or {}), "encoders": [ENCODER]}
    if (out.get("evaluate") or {}).get("visual", "mean") != "mean":
        raise ParamsError("evaluate.visual must be 'mean' on the release's features (one VGG19 feature per second)")
    return out


def stage_paths(entry: pipeline.Stage, item: str | None, out: Path) -> dict[str, str]:
    """The stage's path parameters moved under `out`, the features read from the release's folder."""
    paths = {k: str(out / v) if Path(v).parts[0] in _MOVED else v for k, v in pipeline.stage_paths(entry, item).items()}
    if "features_dir" in paths:
        paths["features_dir"] = str(out / "data" / "features" / ENCODER)
    return paths


def run_release_chain(release_dir: str | Path, out: str | Path, params_path: str | Path = "params.yaml",
                      stages: tuple[str, ...] = STAGES) -> Path:
    """Every stage of `stages` that applies, on the release folder `release_dir`; returns the index page."""
    from avelib.notebook import check_params, execute_stage  # the runner of dvc.yaml
    from avelib.report.config import ReportConfig
    from avelib.report.index import write_report

    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"release-chain: unknown stage(s) {unknown}; the chain's stages: {', '.join(STAGES)}")
    out = Path(out)
    params = release_params(load_params(params_path), release_dir)
    check_params(params)
    for name, why in DOES_NOT_APPLY.items():
        print(f"{name}: does not apply to the release's features: {why}")
    convert_release(release_dir, out / "data" / "features" / ENCODER)
    reports = out / "reports"
    for name in (s for s in STAGES if s in stages):
        entry = pipeline.stage(name)
        for item in (list(params.get(entry.foreach) or {}) if entry.foreach else [None]):
            why = axis_does_not_apply(params["ablations"][item]) if item is not None else None
            if why:
                print(f"{name}@{item}: does not apply to the release's features: {why}")
                continue
            execute_stage(entry, item, params, stage_paths(entry, item, out), reports)
    with atomic_path(out / "params.yaml") as tmp:  # what the page shows: the params the chain ran with
        tmp.write_text(yaml.safe_dump(params, sort_keys=False))
    return write_report(ReportConfig(reports_dir=str(reports), out=str(reports / "index.html"),
                                     title="AVE-CLIP reproduction on the AVE release's features"),
                        out / "params.yaml", out / "no dvc.lock (release-chain)")


def add_release_chain(sub: Any) -> None:
    """`python -m avelib release-chain --release-dir DIR [--out runs/release]`."""
    p = sub.add_parser("release-chain", help="the localizer stages on the AVE release's VGG19/VGGish features",
                       description="Train AVE-CLIP and the baselines, the ablations that apply, the weak and the "
                       "cross-modal tasks on the files of the AVE release's data folder (visual_feature.h5, "
                       "audio_feature.h5, labels.h5, mil_labels.h5, {train,val,test}_order.h5), with every other "
                       "setting from the params file. Outputs go under --out.")
    p.add_argument("--release-dir", type=Path, required=True, help="folder of the release's h5 files")
    p.add_argument("--out", type=Path, default=Path("runs/release"), help="output root (default: %(default)s)")
    p.add_argument("--params-file", default="params.yaml", help="default: %(default)s")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset (default: all: %(default)s)")
    p.set_defaults(func=_release_chain)


def _release_chain(args: Any) -> int:
    page = run_release_chain(args.release_dir, args.out, args.params_file, tuple(args.stages.split(",")))
    print(f"wrote {page}")
    return 0
