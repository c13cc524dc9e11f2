"""Every stage notebook runs top to bottom under papermill, chained on a tiny SynthAVE.

This is the pipeline in miniature (smoke sizes): data -> decode -> pretrain -> finetune -> extract ->
train -> evaluate -> ablation -> ablations summary, each writing its executed notebook and HTML.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avelib.io import read_json
from avelib.notebook import run_notebook

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
CELL_TIMEOUT_S = 300  # a stuck cell fails the test with papermill's timeout message

SEEDS = {"seeds": [0, 1], "postprocess_candidates": [0, 1]}
TRAIN = {"phases": [{"windows": [10], "epochs": 2}, {"windows": [10, 5, 3, 2], "epochs": 3}], "threads": 1}
LOCALIZER = {"hidden": 32, "heads": 2}
SYNTH = {"num_videos": 20, "image_size": 32, "fps": 4, "sample_rate": 8000, "workers": 1}
DECODE = {"frames_per_second": 2, "image_size": 64, "sample_rate": 16000, "workers": 1}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


def _run(name: str, work: Path, output: str | None = None, **parameters) -> dict:
    html = run_notebook(name, parameters, reports_dir=work / "reports", notebooks_dir=ROOT / "notebooks",
                        output_name=output, execution_timeout=CELL_TIMEOUT_S)
    assert html.is_file() and "<html" in html.read_text()[:2000].lower()
    return json.loads((work / "reports" / "notebooks" / f"{output or name}.ipynb").read_text())


def _data(work: Path) -> dict:
    return {"dataset": "synthave", "root": str(work / "synthave"), "cache_dir": str(work / "cache")}


def test_01_data_and_decode(work: Path):
    nb = _run("01_data", work, data=_data(work), synth=SYNTH)
    assert any(o.get("data", {}).get("image/png") for c in nb["cells"] for o in c.get("outputs", []))
    _run("01_decode", work, data=_data(work), decode=DECODE)
    meta = read_json(work / "cache" / "meta.json")
    assert len(meta["video_ids"]) == 20 and all(meta["ok"])


def test_02_pretrain_finetune_and_03_extract(work: Path):
    pretrain = {"pool_videos": 20, "pool_seed": 1, "towers": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16}}
    _run("02_pretrain", work, synth=SYNTH, decode=DECODE, audioclip={"profile": "small"}, pretrain=pretrain,
         pool_dir=str(work / "pool"), out_dir=str(work / "pretrain"))
    assert (work / "pretrain" / "best.pt").is_file()
    audioclip = {"profile": "small", "checkpoint": str(work / "pretrain" / "best.pt")}
    finetune = {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "seed": 0}
    _run("02_finetune", work, data=_data(work), audioclip=audioclip, finetune=finetune,
         out_dir=str(work / "finetune"))
    assert (work / "finetune" / "best.pt").is_file()
    _run("03_extract", work, data=_data(work), audioclip=audioclip, finetune=finetune,
         extract={"batch_size": 32}, checkpoint=str(work / "finetune" / "best.pt"),
         out_dir=str(work / "features"))
    for enc in ("finetuned", "frozen"):
        assert {p.name for p in (work / "features" / enc).glob("*.h5")} == {
            "audio.h5", "visual_mean.h5", "visual_single.h5"}


def test_04_train_and_05_evaluate(work: Path):
    common = dict(data=_data(work), localizer=LOCALIZER, train=TRAIN, evaluate=SEEDS,
                  features_dir=str(work / "features" / "finetuned"))
    _run("04_train", work, **common, out_dir=str(work / "localizer"), plots_dir=str(work / "reports" / "plots"))
    assert (work / "localizer" / "seed1" / "best.pt").is_file()
    assert not (work / "localizer.partial").exists()  # committed whole
    _run("05_evaluate", work, **common, train_dir=str(work / "localizer"), reports_dir=str(work / "reports"),
         out_dir=str(work / "evaluate"))
    assert (work / "evaluate" / "avel" / "seed1" / "last.pt").is_file()
    metrics = read_json(work / "reports" / "metrics.json")
    assert metrics["dataset"].startswith("SynthAVE")
    assert len(metrics["test_accuracy"]["per_seed"]) == 2
    assert 0.0 <= metrics["test_accuracy"]["mean"] <= 1.0
    assert set(read_json(work / "reports" / "baselines.json")) == {
        "aveclip_audio_only", "aveclip_visual_only", "avel", "mlp"}


def test_06_ablation_and_07_summary(work: Path):
    axes = {"encoder": {"frozen": {"features": "frozen"}, "finetuned": {"features": "finetuned"}}}  # one axis: time
    for axis in axes:
        _run("06_ablation", work, output=f"06_ablation_{axis}", axis=axis, data=_data(work), localizer=LOCALIZER,
             train=TRAIN, evaluate=SEEDS, ablations=axes, features_root=str(work / "features"),
             out=str(work / "reports" / "ablations" / f"{axis}.json"),
             main_metrics=str(work / "localizer" / "metrics.json"), out_dir=str(work / "ablations" / axis))
    _run("07_ablations", work, axes_dir=str(work / "reports" / "ablations"),
         out=str(work / "reports" / "ablations.json"))
    variants = read_json(work / "reports" / "ablations.json")["variants"]
    assert [(v["axis"], v["name"]) for v in variants] == [("encoder", "frozen"), ("encoder", "finetuned")]
    assert all(len(v["test_accuracy"]["per_seed"]) == 2 for v in variants)


def test_08_weak_and_09_crossmodal(work: Path):
    one_seed = {**SEEDS, "seeds": [0]}  # the supervised run keeps 2: a paired comparison of unequal seed counts
    _run("08_weak", work, data=_data(work), localizer=LOCALIZER, train=TRAIN, evaluate=one_seed,
         weak={"thresholds": [0.3, 0.5]}, features_root=str(work / "features"),
         supervised_metrics=str(work / "localizer" / "metrics.json"), out=str(work / "reports" / "weak.json"),
         out_dir=str(work / "weak"))
    weak = read_json(work / "reports" / "weak.json")
    assert {(r["model"], r["encoder"]) for r in weak["runs"]} == {
        (m, e) for m in ("aveclip", "avel", "mlp") for e in ("finetuned", "frozen")}
    assert all(len(r["test_accuracy"]["per_seed"]) == 1 for r in weak["runs"])
    assert weak["comparisons"][0]["a"] == "AVE-CLIP, supervised (fine-tuned towers)"
    assert not (work / "weak.partial").exists() and len(list((work / "weak").rglob("seed*.json"))) == 6
    _run("09_crossmodal", work, data=_data(work), evaluate=one_seed, crossmodal={"epochs": 2},
         features_root=str(work / "features"), out=str(work / "reports" / "crossmodal.json"))
    cm = read_json(work / "reports" / "crossmodal.json")
    assert set(cm["encoders"]) == {"finetuned", "frozen"}
    for res in cm["encoders"].values():
        assert res["zero_shot"] is not None and len(res["learned"]["a2v"]["correct"]) == 1
        assert 0 < res["chance"]["accuracy"] < 1
