"""`make paper-smoke`: the paper command of docs/real-data.md, as printed there, on stand-ins of the real files.

A temporary copy of the pipeline gets a stand-in `AVE_Dataset.zip` and a full-size stand-in
`AudioCLIP-Full-Training.pt` (`python -m avelib fixtures paper`), then runs that page's
`dvc exp run` command with only the `SHRINK` overrides appended (few videos, K=2, 1-2 epochs, CPU,
one seed). Deselected in `make test` (marker `paper_smoke`); run by `make paper-smoke` and `.ci/run`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.paper_smoke, pytest.mark.timeout(1200)]  # the paper command on stand-ins

# overrides that only shrink the work; every size of the paper profile stays as docs/real-data.md sets it
SHRINK = [
    "decode.frames_per_second=2", "decode.workers=2",
    "finetune.epochs=1", "finetune.passes_per_epoch=1", "finetune.eval_initial=false",
    "finetune.batch_size=8", "finetune.eval_batch_size=16", "finetune.device=cpu", "finetune_grid.layers=[all]",
    "extract.batch_size=32", "extract.device=cpu",
    "train.device=cpu", "train.phases=[]", "train.epochs=2", "evaluate.seeds=[0]",
    "report.predict.frames_per_second=2",
    "weak.models=[aveclip]", "crossmodal.epochs=2",  # the other two tasks, smoke-sized
    "distributed.localizer_nproc=1",  # torchrun start-up costs more than 8 videos' seeds (ranks: test_distributed)
    "distributed.extract_nproc=1",
    # one ablation axis of seven: the encoder axis, whose quick-study variant is the main run (its frozen side is the
    # tower-run study's), so the ablation stages run at paper sizes without training
    *(f"~ablations.{axis}" for axis in ("frames", "windows", "attention", "refine", "postprocess", "modality")),
]
VIDEOS = 8  # two of each stand-in format

PAPER_PAGE = ROOT / "docs" / "real-data.md"  # where the paper command is printed for users


def paper_command(page: Path = PAPER_PAGE) -> list[str]:
    """The `dvc exp run` command of the paper setting, as printed on `page`, as argv."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)
    paper = [b for b in blocks if "dvc exp run" in b and "audioclip.profile=paper" in b]
    if len(paper) != 1:
        raise AssertionError(f"{page}: expected one bash block with the paper `dvc exp run`, found {len(paper)}")
    return shlex.split(paper[0].replace("\\\n", " "))


def pipeline_copy(dst: Path) -> Path:
    """The tracked and untracked-not-ignored files (no run outputs) in a fresh git repo at `dst`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if rel == "dvc.lock" or rel.startswith("reports/") or not src.is_file():
            continue  # a first run: no lock, no reports of the SynthAVE run
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)
    (dst / ".venv").symlink_to(Path(sys.executable).parents[1])
    git = ["git", "-c", "user.name=paper-smoke", "-c", "user.email=smoke@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "paper smoke"]):
        subprocess.run([*git, *args], cwd=dst, check=True, capture_output=True)
    return dst


def venv_env() -> dict[str, str]:
    """The environment with this venv's tools (dvc, papermill) first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def stage_seconds(reports: Path) -> dict[str, float]:
    """Seconds each notebook stage ran, from papermill's record in the executed notebooks."""
    out = {}
    for nb in sorted((reports / "notebooks").glob("*.ipynb")):
        out[nb.stem] = round(json.loads(nb.read_text())["metadata"]["papermill"]["duration"], 1)
    return out


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, shared_dir) -> Path:
    work = pipeline_copy(tmp_path_factory.mktemp("paper") / "pipeline")
    env = venv_env()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fixtures = work / "fixtures"
    subprocess.run(
        [sys.executable, "-m", "avelib", "fixtures", "paper", "--out", str(fixtures),
         "--keys", str(shared_dir / "conformance/audioclip/keys.tsv"), "--videos", str(VIDEOS)],
        cwd=work, env=env, check=True,
    )
    for folder in ("data", "models/pretrained"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    (fixtures / "AVE_Dataset.zip").rename(work / "data/AVE_Dataset.zip")
    (fixtures / "AudioCLIP-Full-Training.pt").rename(work / "models/pretrained/AudioCLIP-Full-Training.pt")
    timings["fixtures"] = round(time.perf_counter() - t0, 1)
    command = paper_command()
    command += [arg for kv in SHRINK for arg in ("-S", kv)]
    t0 = time.perf_counter()
    run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    timings["dvc exp run"] = round(time.perf_counter() - t0, 1)
    if run.returncode != 0:
        pytest.fail(f"the paper command of {PAPER_PAGE.name} failed ({run.returncode}):\n{run.stdout[-6000:]}\n{run.stderr[-6000:]}")
    timings |= stage_seconds(work / "reports")
    print("paper-smoke seconds:", json.dumps(timings, indent=1))
    (work / "paper_smoke_seconds.json").write_text(json.dumps(timings, indent=1))
    return work


def test_features_are_paper_size(paper_run):
    files = sorted((paper_run / "data/features").rglob("*.h5"))
    assert files, "no feature files written"
    for path in files:
        with h5py.File(path, "r") as f:
            data = f["avadataset"]
            assert data.ndim == 3 and data.shape[1:] == (10, 1024), (path, data.shape)
            assert data.dtype == "float32", (path, data.dtype)


def test_decode_handled_every_format(paper_run):
    """The cache records each source format it resampled, downmixed and padded."""
    videos = json.loads((paper_run / "data/cache/meta.json").read_text())["videos"]
    assert {v["audio_rate"] for v in videos} == {44100, 48000}
    assert {v["audio_channels"] for v in videos} == {1, 2}
    assert {(v["width"], v["height"]) for v in videos} == {(640, 360), (480, 360)}
    assert {round(v["fps"], 2) for v in videos} == {24.0, 25.0, 29.97, 30.0}
    assert [v["padded_s"] > 0 for v in videos].count(True) == 1


def test_metrics_name_the_dataset(paper_run):
    metrics = json.loads((paper_run / "reports/metrics.json").read_text())
    assert metrics["dataset"] == "AVE"


def test_report_renders(paper_run):
    html = (paper_run / "reports/index.html").read_text()
    assert "AVE-CLIP" in html and "AVE" in html and "<html" in html.lower()


def test_predict_with_paper_localizer(paper_run, tmp_path):
    video = sorted((paper_run / "data/AVE_Dataset/AVE").glob("*.mp4"))[0]
    run = subprocess.run(
        [sys.executable, "-m", "avelib", "predict", str(video), "--out", str(tmp_path)],
        cwd=paper_run, env=venv_env(), capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    written = json.loads((tmp_path / "labels.json").read_text())
    assert (written["image_size"], written["sample_rate"], written["frames_per_second"]) == (224, 44100, 2)
    assert written["seconds"] == len(written["labels"]) >= 9
