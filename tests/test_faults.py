"""Faults: every long stage killed in the middle and rerun by `dvc repro` ends as an uninterrupted run;
the same seed gives the same numbers in two fresh directories.

Copies of the pipeline (`pipeline_copy`) get smoke-sized params (`SMOKE`), each in a fresh directory.
Run A is uninterrupted; run C has every long stage killed with SIGKILL (the train stage: SIGINT, a
Ctrl-C) once some progress is on disk, checked to leave nothing that looks finished, and then finished
by `dvc repro`, which must continue the work, not start over. A and C must end equal: that is both the
resume check and the same-seed check across two fresh directories (a third, uninterrupted run would
only repeat the latter). Compared files: see `COMPARED`; wall-clock times (`seconds*` keys, the
notebooks) are left out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import psutil
import pytest
import yaml

from test_paper_smoke import pipeline_copy, venv_env

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1200)]  # whole smoke pipelines, killed and resumed

SMOKE: dict[str, Any] = {
    "synth": {"num_videos": 12, "split_fractions": [0.5, 0.25, 0.25], "image_size": 32, "fps": 4,
              "sample_rate": 8000, "workers": 1},
    "decode": {"frames_per_second": 2, "workers": 1},
    "pretrain": {"pool": {"videos": 12, "split_fractions": [0.5, 0.25, 0.25]}, "towers": {"epochs": 2, "batch_size": 6, "pairs": "clip"}},
    "finetune": {"epochs": 3, "batch_size": 6, "passes_per_epoch": 1, "device": "cpu"},
    "finetune_grid": {"lr": [], "layers": []},  # one run: the kill point watches its files (the grid: test_contrastive)
    "extract": {"batch_size": 8, "device": "cpu"},
    "tower_runs": {"count": 2, "nproc": 1},  # one more tower run: the kill point watches one process
    "train": {"phases": [{"windows": [10], "epochs": 2}, {"windows": [10, 5, 3, 2], "epochs": 4}], "batch_size": 4},
    "evaluate": {"seeds": [0, 1]},
    # refine: one quick axis; encoder: the axis the tower-run study compares across tower runs
    "ablations": {"refine": {"off": {"localizer": {"refine": False}}, "on": {}},
                  "encoder": {"frozen": {"features": "frozen"}, "finetuned": {}}},
    "distributed": {"localizer_nproc": 1, "extract_nproc": 1},  # the kill points watch one process; ranks: test_distributed
    "weak": {"models": ["aveclip"], "encoders": ["finetuned"]},
    "crossmodal": {"encoders": ["finetuned"], "epochs": 3},
}

# what must be equal between runs: (path glob, how): bytes, JSON without timings, or arrays
COMPARED = [
    ("data/cache/*.npy", "bytes"), ("data/cache/meta.json", "bytes"),
    ("models/pretrain/best.pt", "bytes"), ("models/finetune/best.pt", "bytes"),
    ("models/finetune/history.json", "json"),
    ("data/features/*/*.h5", "bytes"),
    ("models/tower_runs/run1/*/best.pt", "bytes"), ("data/features/tower_runs/run1/*/*.h5", "bytes"),
    ("reports/confirm/tower_runs.json", "bytes"),
    ("models/localizer/seed*/best.pt", "bytes"), ("models/localizer/metrics.json", "json"),
    ("models/localizer/predictions.npz", "arrays"),
    ("models/evaluate/*/metrics.json", "json"), ("models/ablations/refine/*/metrics.json", "json"),
    ("reports/metrics.json", "bytes"), ("reports/baselines.json", "bytes"), ("reports/finetune.json", "bytes"),
    ("reports/ablations/refine.json", "bytes"), ("reports/ablations.json", "bytes"),
    ("models/weak/*/*/seed*.json", "json"), ("reports/weak.json", "bytes"), ("reports/crossmodal.json", "bytes"),
]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) and k != "ablations" else v
    return out


def smoke_pipeline(dst: Path) -> Path:
    work = pipeline_copy(dst)
    params = yaml.safe_load((work / "params.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump(_merge(params, SMOKE), sort_keys=False))
    return work


def dvc(work: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(["dvc", *args], cwd=work, env=venv_env(), capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"dvc {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    return run


def _kill_tree(proc: subprocess.Popen, sig: int) -> None:
    """`sig` to the stage and everything it started (papermill's kernel too), as a pre-emption would."""
    family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    for pid in family:
        try:
            psutil.Process(pid).send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=60)
    psutil.wait_procs([p for p in map(_process, family[1:]) if p is not None], timeout=30)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def interrupt(work: Path, stage: str, progress: Callable[[Path], bool], sig: int = signal.SIGKILL) -> None:
    """Start `dvc repro -s stage` and send `sig` to its process tree as soon as `progress(work)` holds."""
    # SIGINT as at a terminal: a job started in the background by a shell without job control (nohup ... &)
    # inherits SIGINT ignored, and the Ctrl-C under test would then not reach the stage at all
    proc = subprocess.Popen(["dvc", "repro", "-s", stage], cwd=work, env=venv_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    while not progress(work):
        if proc.poll() is not None:
            pytest.fail(f"stage {stage} ended (rc {proc.returncode}) before the progress marker: nothing was interrupted")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"stage {stage}: no progress marker after 600 s")
        time.sleep(0.01)
    if sig == signal.SIGINT:  # Ctrl-C reaches the whole foreground process group
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            _kill_tree(proc, signal.SIGKILL)
    else:
        _kill_tree(proc, sig)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _epochs(history: Path) -> int:
    try:
        return len(json.loads(history.read_text())["epochs"])
    except (OSError, ValueError, KeyError):
        return 0


def _chunks_done(done: Path) -> int:
    try:
        return int(np.load(done).sum())
    except (OSError, ValueError):
        return 0


CONFIRM = "confirm/dvc.yaml:"  # a stage of the tower-run study, as DVC names it

# stage -> (progress on disk worth resuming, what the rerun says when it continues, outputs that must not exist);
# a smoke seed writes last.pt only after its last epoch: seed 0's is the earliest marker, the kill lands in seed 1
KILLS: dict[str, tuple[Callable[[Path], bool], str, list[str]]] = {
    "decode": (lambda w: _lines(w / "data/cache.partial/decoded.jsonl") >= 2, "decode: continuing", ["data/cache"]),
    "pretrain": (lambda w: (w / "models/pretrain/last.pt").is_file(), "finetune: resumed from", []),
    "finetune": (lambda w: _epochs(w / "models/finetune/history.json") >= 2, "finetune: resumed from", []),
    "extract": (lambda w: _chunks_done(w / "data/features/finetuned.partial/chunks_done.npy") >= 1, "extract: continuing",
                ["data/features/finetuned"]),
    CONFIRM + "tower_runs": (lambda w: _epochs(w / "models/tower_runs/run1/finetune/history.json") >= 2,
                             "finetune: resumed from", ["data/features/tower_runs/run1/finetuned", "reports/confirm/tower_runs.json"]),
    "train": (lambda w: (w / "models/localizer.partial/seed0/last.pt").is_file(), "seed 0: resumed from",
              ["models/localizer"]),
    "evaluate": (lambda w: (w / "models/evaluate.partial/avel/seed0/last.pt").is_file(), "AVELAttention seed 0: resumed from",
                 ["models/evaluate", "reports/metrics.json"]),
    "ablate@refine": (lambda w: (w / "models/ablations/refine.partial/off/seed0/last.pt").is_file(),
                      "seed 0: resumed from", ["models/ablations/refine", "reports/ablations/refine.json"]),
}


def _executed_text(work: Path, stage: str) -> str:
    tier, _, stage = stage.rpartition(":")
    name = {"ablate@refine": "08_ablation_refine"}.get(stage) or next(
        p.stem for p in (work / "notebooks").glob("*.ipynb") if p.stem.partition("_")[2] == stage)
    reports = work / "reports" / ("confirm" if tier else "")
    nb = json.loads((reports / "notebooks" / f"{name}.ipynb").read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def run_a_started(tmp_path_factory) -> Iterator[tuple[Path, subprocess.Popen, Path]]:
    """The uninterrupted run, started in the background: it goes on beside run_c's kills (most of its stages use one
    core), which halves this module's wall time on 2 cores. Same threads, so still the same bytes."""
    work = smoke_pipeline(tmp_path_factory.mktemp("run_a") / "pipeline")
    log = work.parent / "dvc_repro.log"
    with log.open("w") as out:  # both tiers: the quick study, then the tower-run study
        proc = subprocess.Popen(["sh", "-c", "dvc repro && dvc repro confirm/dvc.yaml"], cwd=work, env=venv_env(),
                                stdout=out, stderr=subprocess.STDOUT)
    yield work, proc, log
    if proc.poll() is None:  # the module failed before run_a was awaited
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def run_a(run_a_started) -> Path:
    work, proc, log = run_a_started
    if proc.wait(timeout=1200) != 0:
        pytest.fail(f"dvc repro failed ({proc.returncode}):\n{log.read_text()[-6000:]}")
    return work


@pytest.fixture(scope="module")
def run_c(run_a_started, tmp_path_factory) -> dict[str, Any]:
    """Every long stage interrupted once, then finished by `dvc repro`; what was seen in between (run_a runs beside)."""
    work = smoke_pipeline(tmp_path_factory.mktemp("run_c") / "pipeline")
    seen: dict[str, Any] = {}
    dvc(work, "repro", "data")
    for stage, (progress, _, outs) in KILLS.items():
        interrupt(work, stage, progress, signal.SIGINT if stage == "train" else signal.SIGKILL)
        status = dvc(work, "status", stage).stdout
        seen[stage] = {"left": [o for o in outs if (work / o).exists()], "status": status,
                       "tmp": sorted(str(p.relative_to(work)) for p in work.rglob(".*.tmp"))}
        dvc(work, "repro", "-s", stage)
        seen[stage]["rerun"] = _executed_text(work, stage)
        seen[stage]["tmp_after"] = sorted(str(p.relative_to(work)) for p in work.rglob(".*.tmp"))
    dvc(work, "repro")  # the rest (the ablation summary, the report)
    dvc(work, "repro", "confirm/dvc.yaml")
    seen["work"] = work
    return seen


@pytest.mark.parametrize("stage", list(KILLS))
def test_killed_stage_leaves_nothing_finished_and_resumes(run_c, stage) -> None:
    seen = run_c[stage]
    assert seen["left"] == [], f"{stage}: outputs that look finished after the kill: {seen['left']}"
    assert "changed" in seen["status"] or "modified" in seen["status"], seen["status"]
    # a killed atomic write leaves only its hidden temp dir, which the rerun's write removes
    assert all(Path(t).name.startswith(".") for t in seen["tmp"]) and seen["tmp_after"] == [], seen
    assert KILLS[stage][1] in seen["rerun"], f"{stage}: the rerun did not continue the interrupted work"


def _timeless(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _timeless(v) for k, v in obj.items() if not k.startswith(("seconds", "train_seconds"))}
    if isinstance(obj, list):
        return [_timeless(v) for v in obj]
    return obj


def assert_same_outputs(a: Path, b: Path) -> None:
    for pattern, how in COMPARED:
        files = sorted(p.relative_to(a) for p in a.glob(pattern))
        assert files, f"{a}: nothing matches {pattern}"
        assert files == sorted(p.relative_to(b) for p in b.glob(pattern)), pattern
        for rel in files:
            if how == "bytes":
                assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
            elif how == "json":
                assert _timeless(json.loads((a / rel).read_text())) == _timeless(json.loads((b / rel).read_text())), rel
            else:
                with np.load(a / rel) as x, np.load(b / rel) as y:
                    assert sorted(x) == sorted(y) and all(np.array_equal(x[k], y[k]) for k in x), rel


def test_interrupted_run_ends_equal_to_an_uninterrupted_one(run_a, run_c) -> None:
    assert_same_outputs(run_a, run_c["work"])
    assert "Data and pipelines are up to date" in dvc(run_c["work"], "status").stdout


def test_same_seed_same_features_in_two_fresh_directories(run_a, run_c) -> None:
    run_b = run_c["work"]
    assert run_b.resolve() != run_a.resolve()  # two directories, each started empty
    for name in ("audio.h5", "visual_mean.h5"):  # the features themselves, not only their bytes
        with h5py.File(run_a / "data/features/finetuned" / name) as x, h5py.File(run_b / "data/features/finetuned" / name) as y:
            assert np.array_equal(x["avadataset"][()], y["avadataset"][()])


# one edit per layer and per params group -> exactly the stages `dvc status` must report (smoke: one axis, refine);
# `report` reruns on every params edit: the index page shows the whole params.yaml
COMMENT = "\n# an edit that changes no behaviour\n"
RERUNS: dict[str, tuple[str, set[str]]] = {
    "avelib/models/localizer.py": ("file", {"train", "evaluate", "ablate@refine", "ablate@encoder", "ablation_table",
                                            "weak", "report", CONFIRM + "tower_encoder", CONFIRM + "tower_weak"}),
    "avelib/models/audioclip.py": ("file", {"data", "pretrain", "finetune", "extract", "ablation_table", "report",
                                            CONFIRM + "confirm_report",
                                            CONFIRM + "recipe_grid", CONFIRM + "tower_runs"}),
    # the index page's own code: 09_ablation_table and the tower-run study's page use the report's sections, not it
    "avelib/report/index.py": ("file", {"report"}),
    "localizer.hidden": ("param", {"train", "ablate@refine", "ablate@encoder", "weak", "report", CONFIRM + "tower_encoder",
                                   CONFIRM + "tower_weak"}),  # evaluate trains baselines only
    "baselines.lr": ("param", {"evaluate", "weak", "report", CONFIRM + "tower_weak"}),
    "finetune.lr": ("param", {"finetune", "report", CONFIRM + "recipe_grid", CONFIRM + "tower_runs"}),
    "tower_runs.count": ("param", {"report", CONFIRM + "tower_runs", CONFIRM + "tower_encoder", CONFIRM + "tower_weak",
                                   CONFIRM + "tower_crossmodal"}),  # no quick stage reads it
}


def _edit(work: Path, what: str, kind: str) -> tuple[Path, str]:
    path = work / (what if kind == "file" else "params.yaml")
    before = path.read_text()
    if kind == "file":
        path.write_text(before + COMMENT)
    else:
        params = yaml.safe_load(before)
        section, key = what.split(".")
        params[section][key] = params[section][key] * 2
        path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path, before


@pytest.mark.parametrize("what", list(RERUNS))
def test_an_edit_reruns_only_the_stages_that_read_it(run_a, what) -> None:
    kind, expected = RERUNS[what]
    path, before = _edit(run_a, what, kind)
    try:
        changed = set(json.loads(dvc(run_a, "status", "--json").stdout or "{}"))
    finally:
        path.write_text(before)
    assert changed == expected, f"{what}: dvc status reports {sorted(changed)}, expected {sorted(expected)}"
    assert "Data and pipelines are up to date" in dvc(run_a, "status").stdout  # reverted: nothing to rerun


def test_dvc_metrics_show_holds_every_test_accuracy(run_a) -> None:
    shown = json.loads(dvc(run_a, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert set(files) == {"reports/headline.json", "reports/confirm/headline.json"}  # both tiers, results only
    data = files["reports/headline.json"]["data"]
    assert set(data["main"]) == {"aveclip", "avel", "mlp"}
    assert set(data["ablations"]["refine"]) == {"off", "on"}  # the smoke pipeline's one axis
    assert set(data["weak"]) == {"aveclip_finetuned"}
    # cross-modal numbers exist only where a test video has a 1-9 s event (the unit test covers the full run)
    scored = json.loads((run_a / "reports/crossmodal.json").read_text())["encoders"]["finetuned"]["videos"]
    assert ("crossmodal" in data) == bool(scored)
    for row in [*data["main"].values(), *data["ablations"]["refine"].values(), *data["weak"].values()]:
        assert 0.0 <= row["test_accuracy"] <= 1.0


def test_a_clone_pulls_both_tiers_from_a_remote_and_trains_nothing(run_a, tmp_path) -> None:
    """Train once, `dvc push`; elsewhere `git clone` + `dvc pull`: nothing to rerun in either tier (docs/pipeline.md)."""
    dvc(run_a, "remote", "add", "--default", "storage", str(tmp_path / "remote"))  # a local folder, as in the docs
    dvc(run_a, "push")
    git = ["git", "-c", "user.name=faults", "-c", "user.email=faults@localhost"]
    for args in (["add", "-A", "--", ".", ":!.venv"], ["commit", "-q", "-m", "trained"], ["clone", "-q", str(run_a), str(tmp_path / "clone")]):
        subprocess.run([*git, *args], cwd=run_a, check=True, capture_output=True)
    clone = tmp_path / "clone"
    if not (clone / ".venv").exists():
        (clone / ".venv").symlink_to((run_a / ".venv").resolve())
    dvc(clone, "pull")
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    for target in ([], ["confirm/dvc.yaml"]):
        assert "Running stage" not in dvc(clone, "repro", *target).stdout
