"""Every stage notebook runs top to bottom through the stage runner, chained on a tiny SynthAVE.

This is the pipeline in miniature: `run_stage` for every stage of the table, in a scratch directory
with the repository's params.yaml shrunk to smoke sizes (`SMOKE`, avelib.smoke). Each stage's kernel records the
params keys it reads (AVELIB_READS_DIR): they must be exactly the keys its table entry lists, no
more (a read the table misses would not rerun the stage when it changes) and none unread.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from avelib import pipeline
from avelib.io import read_json
from avelib.notebook import READS_DIR_ENV, run_stage
from avelib.report.confirm import write_confirm_report
from avelib.smoke import SMOKE, merge

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the module's stages share one scratch pipeline

# weak and cross-modal on one seed (the supervised run keeps 2: a paired comparison of unequal seed counts)
ONE_SEED = {"evaluate": {"seeds": [0]}}
PER_RUN = {"tower_runs": {"pretraining": "per_run"}}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory):
    """A scratch pipeline directory, the working directory of the module's stages."""
    work = tmp_path_factory.mktemp("pipeline")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, over in (("params.yaml", SMOKE), ("params_one_seed.yaml", merge(SMOKE, ONE_SEED)),
                       ("params_per_run.yaml", merge(SMOKE, PER_RUN))):
        (work / name).write_text(yaml.safe_dump(merge(params, over), sort_keys=False))
    before, old_reads = Path.cwd(), os.environ.get(READS_DIR_ENV)
    os.chdir(work)
    os.environ[READS_DIR_ENV] = str(work / "reads")
    (work / "reads").mkdir()
    yield work
    os.chdir(before)
    os.environ.pop(READS_DIR_ENV) if old_reads is None else os.environ.update({READS_DIR_ENV: old_reads})


def _run(name: str, work: Path, item: str | None = None, params: str = "params.yaml") -> dict:
    entry = pipeline.stage(name)
    html = run_stage(name, item, work / params, notebooks_dir=ROOT / "notebooks")
    assert html.is_file() and "<html" in html.read_text()[:2000].lower()
    _check_reads(entry, item, work / "reads" / (f"{name}@{item}.txt" if item else f"{name}.txt"))
    return json.loads((work / entry.reports_dir / "notebooks" / f"{entry.output_name(item)}.ipynb").read_text())


def _check_reads(entry: pipeline.Stage, item: str | None, record: Path) -> None:
    keys = pipeline.stage_keys(entry, item)
    reads = set(record.read_text().split()) if record.is_file() else set()
    unlisted = sorted(r for r in reads if not pipeline.covers(keys, r))
    unread = [k for k in keys if not any(r == k or r.startswith(k + ".") for r in reads)]
    assert not unlisted, f"stage {entry.name} reads params keys its table entry does not list: {unlisted}"
    assert not unread, f"stage {entry.name} lists params keys it never reads: {unread}"


def test_data_and_decode(work: Path):
    nb = _run("data", work)
    assert any(o.get("data", {}).get("image/png") for c in nb["cells"] for o in c.get("outputs", []))
    _run("decode", work)
    meta = read_json(work / "data" / "cache" / "meta.json")
    assert len(meta["video_ids"]) == 20 and all(meta["ok"])


def test_pretrain_finetune_and_extract(work: Path):
    _run("pretrain", work)
    assert (work / "models" / "pretrain" / "best.pt").is_file()
    _run("finetune", work)
    assert (work / "models" / "finetune" / "best.pt").is_file()
    _run("extract", work)
    assert {p.name for p in (work / "data" / "features" / "finetuned").glob("*.h5")} == {
        "audio.h5", "visual_mean.h5", "visual_single.h5"}
    assert not (work / "data" / "features" / "frozen").exists()  # the tower-run study's (tower_runs)


def test_train_and_evaluate(work: Path):
    _run("train", work)
    assert (work / "models" / "localizer" / "seed1" / "best.pt").is_file()
    assert not (work / "models" / "localizer.partial").exists()  # committed whole
    _run("evaluate", work)
    assert (work / "models" / "evaluate" / "avel" / "seed1" / "last.pt").is_file()
    metrics = read_json(work / "reports" / "metrics.json")
    assert metrics["dataset"].startswith("SynthAVE")
    assert len(metrics["test_accuracy"]["per_seed"]) == 2
    assert 0.0 <= metrics["test_accuracy"]["mean"] <= 1.0
    assert set(read_json(work / "reports" / "baselines.json")) == {"avel", "mlp"}  # one-modality: ablate@modality


def test_ablate_and_ablation_table(work: Path):
    _run("ablate", work, item="encoder")
    _run("ablation_table", work)
    table = read_json(work / "reports" / "ablations.json")
    # one tower run: the frozen variant is the tower-run study's (test_the_tower_run_study), not trained here
    assert [(v["axis"], v["name"]) for v in table["variants"]] == [("encoder", "finetuned")]
    assert table["in_tower_run_study"] == {"encoder": ["frozen"]}
    assert not (work / "models" / "ablations" / "encoder" / "frozen").exists()
    assert len(table["variants"][0]["test_accuracy"]["per_seed"]) == 2


def test_weak_and_crossmodal(work: Path):
    _run("weak", work, params="params_one_seed.yaml")
    weak = read_json(work / "reports" / "weak.json")
    # the quick study: the fine-tuned towers only; the frozen side is the tower-run study's (tower_weak)
    assert {(r["model"], r["encoder"]) for r in weak["runs"]} == {(m, "finetuned") for m in ("aveclip", "avel", "mlp")}
    assert all(len(r["test_accuracy"]["per_seed"]) == 1 for r in weak["runs"])
    assert weak["comparisons"][0]["a"] == "AVE-CLIP, supervised (fine-tuned towers)"
    assert not (work / "models" / "weak.partial").exists() and len(list((work / "models" / "weak").rglob("seed*.json"))) == 3
    assert not [c for c in weak["comparisons"] if "tower_runs" in c]  # no comparison between tower sets
    _run("crossmodal", work, params="params_one_seed.yaml")
    cm = read_json(work / "reports" / "crossmodal.json")
    assert set(cm["encoders"]) == {"finetuned"}
    for res in cm["encoders"].values():
        assert res["zero_shot"] is not None and len(res["learned"]["a2v"]["correct"]) == 1
        assert 0 < res["chance"]["accuracy"] < 1
    assert cm["tower_runs"] == 1 and all(c["tower_runs"] == 1 for c in cm["comparisons"] if "tower_runs" in c)


def test_the_tower_run_study(work: Path):
    """confirm/dvc.yaml's stages on the quick stages' outputs: the grid, a second tower run, the comparisons."""
    _run("recipe_grid", work)
    grid = read_json(work / "reports" / "confirm" / "recipe_grid.json")["grid"]
    assert len(grid) == 4 and sum(r["chosen"] for r in grid) == 1 and sum(r["configured"] for r in grid) == 1
    _run("tower_runs", work)
    for folder in ("tower_runs/run1/finetuned", "tower_runs/run1/frozen", "frozen"):  # run 0's frozen side too
        assert {p.name for p in (work / "data" / "features" / folder).glob("*.h5")} == {
            "audio.h5", "visual_mean.h5", "visual_single.h5"}
    runs = read_json(work / "reports" / "confirm" / "tower_runs.json")
    assert len(runs["runs"]) == 2 and runs["kept_minus_start"]["tower_runs"] == 2
    assert [p["kept_epoch"] >= 0 for p in runs["pretraining"]] == [True, True] and runs["pretraining_design"] == "shared"
    _run("tower_encoder", work)
    frozen = read_json(work / "reports" / "confirm" / "ablation_encoder.json")["variants"][0]
    assert frozen["vs_reference"]["tower_runs"] == 2 and len(frozen["across_tower_runs"]) == 2
    _run("tower_weak", work, params="params_one_seed.yaml")
    weak = read_json(work / "reports" / "confirm" / "weak.json")
    assert len(list((work / "models" / "tower_weak").rglob("seed*.json"))) == 12
    assert [c["tower_runs"] for c in weak["comparisons"] if "tower_runs" in c] == [2, 2, 2]  # per model, across 2 runs
    assert {r["encoder"] for r in weak["runs"]} == {"finetuned", "frozen"}  # run 0's frozen side: trained here
    _run("tower_crossmodal", work, params="params_one_seed.yaml")
    cm = read_json(work / "reports" / "confirm" / "crossmodal.json")
    assert cm["tower_runs"] == 2 and all(c["tower_runs"] == 2 for c in cm["comparisons"] if "tower_runs" in c)
    write_confirm_report("reports", "reports/confirm/index.html")
    assert "weak" in read_json(work / "reports" / "confirm" / "headline.json")


def test_a_tower_run_pretrains_on_the_pool_with_the_stage_keys_only(work: Path):
    """`tower_runs.pretraining: per_run` from the stage's own params keys: run 1 pretrains on the pretrain stage's
    pool without reading `synth` or `decode` (which this stage does not list), and leaves the pool as it was."""
    pool = work / "data" / "pretrain" / "pool.json"
    before = pool.read_bytes()
    _run("tower_runs", work, params="params_per_run.yaml")
    runs = read_json(work / "reports" / "confirm" / "tower_runs.json")
    assert runs["pretraining_design"] == "per_run" and len(runs["pretraining"]) == 2
    assert (work / "models" / "tower_runs" / "run1" / "pretrain" / "best.pt").is_file()
    assert pool.read_bytes() == before


def test_the_reads_record_catches_an_unlisted_key(tmp_path):
    entry = pipeline.stage("crossmodal")
    record = tmp_path / "reads.txt"
    record.write_text("data.root\nevaluate.seeds\nevaluate.visual\ncrossmodal.epochs\nevaluate.postprocess_candidates\n")
    with pytest.raises(AssertionError, match="does not list.*postprocess_candidates"):
        _check_reads(entry, None, record)
    record.write_text("data.root\nevaluate.seeds\ncrossmodal.epochs\n")
    with pytest.raises(AssertionError, match="never reads.*evaluate.visual"):
        _check_reads(entry, None, record)
