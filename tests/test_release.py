"""The AVE release's features as the localizer stages' input: the files checked, converted once, and the
`release-chain` command of docs/real-data.md on stand-in files in the exact release layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from avelib.data.cache import DataConfig
from avelib.data.features import FeatureFileError, load_feature_set
from avelib.data.prepare import prepare_dataset
from avelib.data.release import convert_release, load_labels
from avelib.data.synth import SynthConfig
from avelib.fixtures import write_release_features
from avelib.release_chain import axis_does_not_apply, release_params
from test_faults import _merge
from test_stage_notebooks import SMOKE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_features(tmp_path_factory.mktemp("release"), num_videos=60, seed=0)


def test_standin_has_the_release_layout(release):
    shapes = {"visual_feature.h5": ((60, 10, 7, 7, 512), np.float64), "audio_feature.h5": ((60, 10, 128), np.float64),
              "labels.h5": ((60, 10, 29), np.float32), "mil_labels.h5": ((60, 29), np.float32)}
    for name, (shape, dtype) in shapes.items():
        with h5py.File(release / name) as f:
            assert f["avadataset"].shape == shape and f["avadataset"].dtype == dtype, name
    rows = []
    for split in ("train", "val", "test"):
        with h5py.File(release / f"{split}_order.h5") as f:
            assert f["order"].dtype == np.int64
            rows += f["order"][...].tolist()
    assert sorted(rows) == list(range(60))


def test_labels_and_splits_come_from_the_release_files(release):
    got = load_labels(DataConfig(dataset="release", root=release))
    with h5py.File(release / "labels.h5") as f:
        np.testing.assert_array_equal(got.labels, f["avadataset"][...].argmax(axis=2))
    with h5py.File(release / "test_order.h5") as f:
        np.testing.assert_array_equal(got.splits["test"], f["order"][...])  # the release's order, not sorted
    assert got.videos.shape == (60, 29) and (got.videos.sum(axis=1) == 1).all()


@pytest.mark.parametrize("rows, match", [([0, 1, 60], r"test_order\.h5: rows outside \[0, 60\)"),
                                         ([0, 1, 2], "in two of the"),])
def test_bad_order_files_are_named(release, tmp_path, rows, match):
    bad = tmp_path / "release"
    bad.mkdir()
    for path in release.iterdir():
        (bad / path.name).symlink_to(path)
    (bad / "test_order.h5").unlink()
    with h5py.File(bad / "test_order.h5", "w") as f:
        f["order"] = np.array(rows, dtype=np.int64)
    with pytest.raises(FeatureFileError, match=match):
        load_labels(DataConfig(dataset="release", root=bad))


def test_conversion_pools_the_7x7_map_once(release, tmp_path):
    out = convert_release(release, tmp_path / "features")
    audio, visual = load_feature_set(out, "mean")
    with h5py.File(release / "visual_feature.h5") as f:
        np.testing.assert_allclose(visual, f["avadataset"][...].mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    with h5py.File(release / "audio_feature.h5") as f:
        np.testing.assert_allclose(audio, f["avadataset"][...], rtol=1e-6)
    before = (out / "audio.h5").stat().st_mtime_ns
    convert_release(release, out)  # same release files: nothing is rewritten
    assert (out / "audio.h5").stat().st_mtime_ns == before


def test_missing_release_file_is_named(release, tmp_path):
    for path in release.iterdir():
        if path.name != "mil_labels.h5":
            (tmp_path / path.name).symlink_to(path)
    with pytest.raises(FileNotFoundError, match="missing mil_labels.h5"):
        convert_release(tmp_path, tmp_path / "features")


def test_dvc_data_stage_points_to_the_release_chain(tmp_path):
    with pytest.raises(ValueError, match="release-chain"):
        prepare_dataset(DataConfig(dataset="release", root=tmp_path), SynthConfig())


def test_axes_that_need_other_features_do_not_apply():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    skipped = {axis for axis, variants in params["ablations"].items() if axis_does_not_apply(variants)}
    assert skipped == {"encoder", "frames"}
    out = release_params(params, "some/dir")
    assert out["data"] == {**params["data"], "dataset": "release", "root": "some/dir"}
    assert out["weak"]["encoders"] == ["release"] and out["crossmodal"]["encoders"] == ["release"]


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}


@pytest.mark.paper_smoke
@pytest.mark.timeout(600)
def test_release_chain_runs_the_localizer_stages(release, tmp_path):
    """The command of docs/real-data.md: train -> evaluate -> ablations that apply -> weak -> cross-modal, outputs under --out."""
    smoke = _merge(SMOKE, {"evaluate": {"seeds": [0]},
                           "ablations": {"encoder": {"frozen": {"features": "frozen"}},
                                         "frames": {"single": {"evaluate": {"visual": "single"}}},
                                         "refine": {"off": {"localizer": {"refine": False}}, "on": {}}}})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), smoke)))
    workspace = {d: _mtimes(ROOT / d) for d in ("reports", "models")}
    out = tmp_path / "runs" / "release"
    run = subprocess.run([sys.executable, "-m", "avelib", "release-chain", "--release-dir", str(release),
                          "--out", str(out), "--params-file", str(params)],
                         cwd=ROOT, capture_output=True, text=True, timeout=560)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for skipped in ("data", "decode", "pretrain", "finetune", "extract", "ablate@encoder", "ablate@frames"):
        assert f"{skipped}: does not apply to the release's features" in run.stdout
    assert {d: _mtimes(ROOT / d) for d in workspace} == workspace  # the DVC workspace is untouched

    reports = out / "reports"
    label = "AVE, release features (VGG19 + VGGish)"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["dataset"] == label and 0 <= metrics["test_accuracy"]["mean"] <= 1
    baselines = json.loads((reports / "baselines.json").read_text())
    assert set(baselines) == {"avel", "mlp"} and all(b["dataset"] == label for b in baselines.values())
    ablations = json.loads((reports / "ablations.json").read_text())
    assert {(v["axis"], v["name"]) for v in ablations["variants"]} == {("refine", "off"), ("refine", "on")}
    weak = json.loads((reports / "weak.json").read_text())
    assert {(r["model"], r["encoder"]) for r in weak["runs"]} == {(m, "release") for m in ("aveclip", "avel", "mlp")}
    assert weak["comparisons"][0]["a"] == "AVE-CLIP, supervised (release features)"
    crossmodal = json.loads((reports / "crossmodal.json").read_text())
    encoder = crossmodal["encoders"]["release"]
    assert encoder["zero_shot"] is None and encoder["learned"]["a2v"]  # 512-d VGG19 vs 128-d VGGish: no shared space
    assert (reports / "index.html").is_file() and (reports / "html" / "06_train.html").is_file()
    assert yaml.safe_load((out / "params.yaml").read_text())["data"]["dataset"] == "release"


SHARED = ROOT.parent / "shared" / "data" / "ave"


@pytest.mark.skipif(not (SHARED / "train_order.h5").is_file(), reason="../shared/data/ave (the real release files) absent")
def test_real_release_split_and_label_files_meet_the_loader(tmp_path):
    """The real *_order.h5, mil_labels.h5 and labels_closs.h5 through `load_labels`, with labels.h5 rebuilt from
    them (the real one is not in ../shared): 3339 / 402 / 402 unsorted rows covering all 4143 videos once."""
    for name in ("train_order.h5", "val_order.h5", "test_order.h5", "mil_labels.h5", "labels_closs.h5"):
        (tmp_path / name).symlink_to(SHARED / name)
    with h5py.File(SHARED / "mil_labels.h5") as f, h5py.File(SHARED / "labels_closs.h5") as g:
        category, event = f["avadataset"][...].argmax(axis=1), g["avadataset"][...] > 0.5  # [N], [N,10]
    with h5py.File(tmp_path / "labels.h5", "w") as f:
        f["avadataset"] = np.eye(29, dtype=np.float32)[np.where(event, category[:, None], 28)]
    got = load_labels(DataConfig(dataset="release", root=tmp_path))
    assert {k: len(v) for k, v in got.splits.items()} == {"train": 3339, "val": 402, "test": 402}
    assert sorted(np.concatenate(list(got.splits.values())).tolist()) == list(range(4143))
    assert (np.diff(got.splits["train"]) < 0).any()  # the release's order, which the stand-in mimics
    assert (got.videos.sum(axis=1) == 1).all() and (got.labels != 28).any(axis=1).mean() > 0.99
