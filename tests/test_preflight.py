"""The mistakes a user makes with the real files get a clear error before any work starts
(avelib.preflight, run first by the data stage), and no stage output looks complete afterwards."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from avelib.data.ave import HEADER, SPLIT_FILES
from avelib.data.cache import DataConfig, DecodeConfig
from avelib.fixtures import read_keys
from avelib.models.audioclip import AudioCLIPParams
from avelib.notebook import run_stage
from avelib.preflight import PreflightError, check_inputs

PAPER_DECODE = DecodeConfig(image_size=224, sample_rate=44100, max_failed_fraction=0.05)
IDS = [f"vid{i:08d}" for i in range(24)]
LINES = [f"Bark&{vid}&good&0&10" for vid in IDS]


def write_release_zip(path: Path, videos: list[str] = IDS) -> Path:
    """An AVE_Dataset.zip of the release layout (video bodies are placeholders: only names are checked)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("AVE_Dataset/Annotations.txt", "\n".join([HEADER, *LINES]) + "\n")
        for i, fname in enumerate(SPLIT_FILES.values()):
            zf.writestr(f"AVE_Dataset/{fname}", "".join(line + "\n" for line in LINES[i * 8 : (i + 1) * 8]))
        for vid in videos:
            zf.writestr(f"AVE_Dataset/AVE/{vid}.mp4", b"\0" * 16)
    return path


def ave_data(tmp_path: Path, zip_path: Path | None) -> DataConfig:
    return DataConfig(dataset="ave", root=tmp_path / "data/AVE_Dataset", ave_zip=zip_path, cache_dir=tmp_path / "cache")


def shaped_state(keys_tsv: Path, drop_prefix: str | None = None) -> dict:
    """Every key and shape of the official file, stored as broadcast zeros (a file of a few KB)."""
    return {k: torch.zeros((), dtype=getattr(torch, dt)).expand(shape) for k, shape, dt in read_keys(keys_tsv)
            if drop_prefix is None or not k.startswith(drop_prefix)}


def expect(match: str, *where: str):
    """pytest.raises for a PreflightError whose message names the file (`where`), the cause and a fix."""
    return pytest.raises(PreflightError, match=rf"(?s)(?=.*{match})(?=.*Fix: )" + "".join(f"(?=.*{w})" for w in where))


def no_outputs(tmp_path: Path) -> None:
    assert not (tmp_path / "data/AVE_Dataset").exists() and not (tmp_path / "cache").exists()


# ---- the zip -----------------------------------------------------------------------------
def test_complete_zip_passes(tmp_path):
    data = ave_data(tmp_path, write_release_zip(tmp_path / "AVE_Dataset.zip"))
    assert check_inputs(data, PAPER_DECODE, AudioCLIPParams(profile="paper"), pretrain_enabled=True) == []


def test_missing_zip(tmp_path):
    data = ave_data(tmp_path, tmp_path / "AVE_Dataset.zip")
    with expect("AVE zip not found", "AVE_Dataset.zip"):
        check_inputs(data, PAPER_DECODE, AudioCLIPParams(profile="paper"), True)
    no_outputs(tmp_path)


def test_truncated_zip(tmp_path):
    path = write_release_zip(tmp_path / "AVE_Dataset.zip")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with expect("not a complete zip archive.*cut short", "AVE_Dataset.zip", "download AVE_Dataset.zip again"):
        check_inputs(ave_data(tmp_path, path), PAPER_DECODE, AudioCLIPParams(profile="paper"), True)
    no_outputs(tmp_path)


def test_split_ids_without_video(tmp_path):
    """Two of 24 split ids have no video: 8.3 % > max_failed_fraction 5 % -> an error naming them."""
    path = write_release_zip(tmp_path / "AVE_Dataset.zip", videos=IDS[2:])
    with expect("2 split id.s. have no video", "AVE_Dataset.zip", "trainSet.txt", IDS[0], IDS[1]):
        check_inputs(ave_data(tmp_path, path), PAPER_DECODE, AudioCLIPParams(profile="paper"), True)
    no_outputs(tmp_path)


def test_few_missing_videos_are_tolerated_and_returned(tmp_path):
    path = write_release_zip(tmp_path / "AVE_Dataset.zip", videos=IDS[1:])  # 1 of 24 = 4.2 %
    assert check_inputs(ave_data(tmp_path, path), PAPER_DECODE, AudioCLIPParams(profile="paper"), True) == [IDS[0]]


def test_unpacked_root_without_videos(tmp_path):
    root = tmp_path / "AVE_Dataset"
    with zipfile.ZipFile(write_release_zip(tmp_path / "z.zip", videos=IDS[:12])) as zf:
        zf.extractall(tmp_path)
    data = DataConfig(dataset="ave", root=root, ave_zip=None, cache_dir=tmp_path / "cache")
    with expect("12 split id.s. have no video", str(root / "AVE"), "unpack the complete release"):
        check_inputs(data, PAPER_DECODE, AudioCLIPParams(profile="paper"), True)


# ---- the checkpoint ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys_tsv(shared_dir) -> Path:
    return shared_dir / "conformance/audioclip/keys.tsv"


def towers(path: Path, profile: str = "paper", second: Path | None = None) -> AudioCLIPParams:
    return AudioCLIPParams(profile=profile, checkpoint=str(path), second_checkpoint=str(second) if second else None)


def check_towers(tmp_path: Path, params: AudioCLIPParams, decode: DecodeConfig = PAPER_DECODE) -> list[str]:
    return check_inputs(DataConfig(root=tmp_path / "synthave"), decode, params, pretrain_enabled=False)


def test_full_official_layout_passes(tmp_path, keys_tsv):
    torch.save(shaped_state(keys_tsv), tmp_path / "AudioCLIP-Full-Training.pt")
    assert check_towers(tmp_path, towers(tmp_path / "AudioCLIP-Full-Training.pt")) == []


def test_clip_pt_alone(tmp_path, keys_tsv):
    torch.save(shaped_state(keys_tsv, drop_prefix="audio."), tmp_path / "CLIP.pt")
    with expect("this is CLIP.pt: image and text towers, no audio tower", "CLIP.pt", "AudioCLIP-Full-Training.pt", "second_checkpoint"):
        check_towers(tmp_path, towers(tmp_path / "CLIP.pt"))


def test_esrnxfbsp_alone(tmp_path):
    torch.save({"fbsp.m": torch.zeros(3), "conv1.weight": torch.zeros(2, 2)}, tmp_path / "ESRNXFBSP.pt")
    with expect("the audio tower alone", "ESRNXFBSP.pt", "second_checkpoint=ESRNXFBSP.pt"):
        check_towers(tmp_path, towers(tmp_path / "ESRNXFBSP.pt"))


def test_random_state_dict(tmp_path):
    torch.save({"encoder.weight": torch.zeros(4, 4), "head.bias": torch.zeros(4)}, tmp_path / "model.pt")
    with expect("not an AudioCLIP checkpoint .no visual.. or audio.. key among 2: encoder.weight", "model.pt",
                "AudioCLIP-Full-Training.pt"):
        check_towers(tmp_path, towers(tmp_path / "model.pt"))


def test_not_a_torch_file(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"<html>Google Drive: too many users have viewed this file</html>")
    with expect("not a loadable state_dict checkpoint", "weights.pt", "make weights"):
        check_towers(tmp_path, towers(tmp_path / "weights.pt"))


def test_truncated_checkpoint(tmp_path, keys_tsv):
    path = tmp_path / "AudioCLIP-Full-Training.pt"
    torch.save(shaped_state(keys_tsv), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with expect("not a loadable state_dict checkpoint", "AudioCLIP-Full-Training.pt"):
        check_towers(tmp_path, towers(path))


def test_small_profile_with_paper_checkpoint(tmp_path, keys_tsv):
    torch.save(shaped_state(keys_tsv), tmp_path / "AudioCLIP-Full-Training.pt")
    small = DecodeConfig(image_size=64, sample_rate=16000)
    with expect("a 'paper'-profile checkpoint, but audioclip.profile='small'", "AudioCLIP-Full-Training.pt",
                "set audioclip.profile=paper"):
        check_towers(tmp_path, towers(tmp_path / "AudioCLIP-Full-Training.pt", profile="small"), small)


def test_missing_checkpoint(tmp_path):
    with expect("towers checkpoint not found", "AudioCLIP-Full-Training.pt", "make weights"):
        check_towers(tmp_path, towers(tmp_path / "AudioCLIP-Full-Training.pt"))


def test_decode_sizes_of_the_other_profile(tmp_path):
    with expect("audioclip.profile='paper' but decode.image_size=64 .the towers take 224.", "params.yaml",
                "-S decode.image_size=224 -S decode.sample_rate=44100"):
        check_inputs(DataConfig(), DecodeConfig(image_size=64, sample_rate=44100), AudioCLIPParams(profile="paper"), True)


# ---- the stage ---------------------------------------------------------------------------
@pytest.mark.paper_smoke  # a papermill kernel: run by `make paper-smoke`, kept out of `make test`'s budget
def test_data_stage_fails_first_and_leaves_nothing_complete(tmp_path, monkeypatch):
    """The data stage (papermill) with a truncated zip: the error names the zip; no output is written."""
    path = write_release_zip(tmp_path / "AVE_Dataset.zip")
    path.write_bytes(path.read_bytes()[:100])
    (tmp_path / "notebooks").symlink_to(Path(__file__).resolve().parents[1] / "notebooks")
    (tmp_path / "params.yaml").write_text(
        f"data: {{dataset: ave, root: data/AVE_Dataset, ave_zip: {path}, cache_dir: data/cache}}\n"
        "synth: {}\ndecode: {image_size: 224, sample_rate: 44100}\n"
        "audioclip: {profile: paper, checkpoint: null}\npretrain: {enabled: false}\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match=r"AVE_Dataset.zip: not a complete zip archive"):
        run_stage("data")
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["AVE_Dataset.zip", "params.yaml"]
