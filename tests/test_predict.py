"""Own-video inference: windows, checkpoint loading, the CLI end to end on a real 55-s clip, bad files."""

from __future__ import annotations

import csv
import filecmp
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avelib.__main__ import main
from avelib.data.ave import BACKGROUND, NUM_CLASSES
from avelib.models.audioclip import build_audioclip, save_checkpoint
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig
from avelib.params import resolved
from avelib.predict import load_localizer, localize, pad_to_windows

DIM = 128  # embed_dim of the small AudioCLIP profile


def save_localizer(path: Path, dim: int = DIM, max_len: int = 1, **record: str) -> Path:
    """An untrained localizer checkpoint in the design.md format; `record`: extra keys (e.g. its dataset)."""
    torch.manual_seed(0)
    cfg = LocalizerConfig(hidden=32, heads=4)
    model = AVECLIPLocalizer(cfg, dim, dim)
    torch.save({"config": resolved(cfg), "state_dict": model.state_dict(), "audio_dim": dim, "visual_dim": dim,
                "postprocess_max_len": max_len, "encoder": "finetuned", "visual": "mean", **record}, path)  # fmt: skip
    return path


def test_pad_to_windows() -> None:
    x, w = pad_to_windows(np.ones((23, 4), dtype=np.float32))
    assert x.shape == (30, 4) and w == 3 and x[23:].sum() == 0 and x[:23].sum() == 92
    x, w = pad_to_windows(np.ones((10, 4)))
    assert x.shape == (10, 4) and w == 1
    x, w = pad_to_windows(np.ones((3, 4)))
    assert x.shape == (10, 4) and w == 1


@pytest.mark.parametrize("t", [3, 10, 23])
def test_localize_any_length(tmp_path: Path, t: int) -> None:
    bundle = load_localizer(save_localizer(tmp_path / "loc.pt"))
    rng = np.random.default_rng(0)
    res = localize(bundle, rng.standard_normal((t, DIM), dtype=np.float32), rng.standard_normal((t, DIM), dtype=np.float32))
    for key in ("labels", "raw_labels", "alpha", "class_probability", "window_class"):
        assert res[key].shape == (t,), key
    assert ((res["labels"] >= 0) & (res["labels"] < NUM_CLASSES)).all()
    assert ((res["alpha"] > 0) & (res["alpha"] < 1)).all()
    # the AVE-CLIP rule before post-processing: event class where alpha > 0.5, else background
    np.testing.assert_array_equal(res["raw_labels"], np.where(res["alpha"] > 0.5, res["window_class"], BACKGROUND))


def test_feature_size_mismatch_names_checkpoint(tmp_path: Path) -> None:
    bundle = load_localizer(save_localizer(tmp_path / "loc.pt"))
    with pytest.raises(ValueError, match=r"loc\.pt.*128/128.*64/64"):
        localize(bundle, np.zeros((10, 64), np.float32), np.zeros((10, 64), np.float32))


def test_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_localizer(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt.*not a readable torch checkpoint"):
        load_localizer(junk)
    partial = tmp_path / "partial.pt"
    torch.save({"state_dict": {}}, partial)
    with pytest.raises(ValueError, match=r"partial\.pt.*missing key\(s\).*config"):
        load_localizer(partial)


def test_cli_predict_real_video(tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture) -> None:
    video = shared_dir / "media" / "bbb_trailer_55s.mp4"
    torch.manual_seed(0)
    towers = tmp_path / "towers.pt"
    save_checkpoint(build_audioclip("small", None), towers, {"note": "random init, test only"})
    ckpt = save_localizer(tmp_path / "loc.pt")
    out = tmp_path / "pred"
    rc = main(["predict", str(video), "--checkpoint", str(ckpt), "--towers", str(towers), "--out", str(out),
               "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out / "labels.json").read_text())
    assert data["seconds"] == 56 and len(data["labels"]) == 56  # 55.1 s -> 56 seconds, trimmed back from 60
    assert [r["second"] for r in data["labels"]] == list(range(56))
    assert data["postprocess_max_len"] == 1 and data["image_size"] == 64 and data["sample_rate"] == 16000
    with (out / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 56
    assert set(rows[0]) >= {"second", "label", "category", "alpha", "class_probability"}
    assert all(0.0 < float(r["alpha"]) < 1.0 for r in rows)
    assert (out / "timeline.png").read_bytes().startswith(b"\x89PNG")
    events = sum(1 for i, r in enumerate(rows) if r["category"] != "background" and (i == 0 or rows[i - 1]["label"] != r["label"]))
    assert (out / "labels.vtt").read_text().startswith("WEBVTT\n\n") and (out / "labels.vtt").read_text().count(" --> ") == events
    assert (out / "labels.srt").read_text().count(" --> ") == events
    page = (out / "video.html").read_text()
    assert f'src="{video.name}"' in page and page.count("data-second=") == 56
    assert filecmp.cmp(out / video.name, video, shallow=False)  # the page plays its own copy


def test_video_page_says_what_the_model_knows_and_moves_with_its_folder(tmp_path: Path) -> None:
    from avelib.data.synth import write_video

    video = tmp_path / "clips" / "mine.mp4"
    video.parent.mkdir()
    write_video(video, np.zeros((30, 32, 32, 3), dtype=np.uint8), np.zeros(3 * 16000, dtype=np.float32), fps=10,
                sample_rate=16000, crf=30)
    torch.manual_seed(0)
    towers = tmp_path / "towers.pt"  # as stage A writes it: kept epoch and the resolved params with the data record
    save_checkpoint(build_audioclip("small", None), towers, {"epoch": 3, "params": {"data": {"num_videos": 12}}})
    ckpt = save_localizer(tmp_path / "loc.pt", dataset="SynthAVE (embedded, procedural)")
    out = tmp_path / "pred"
    assert main(["predict", str(video), "--checkpoint", str(ckpt), "--towers", str(towers), "--out", str(out),
                 "--params", str(tmp_path / "absent.yaml")]) == 0
    page = (out / "video.html").read_text()
    warning = re.search(r'<p class="warn" id="trained-on-warning">([^<]*)</p>', page)
    assert warning and "was trained on SynthAVE (embedded, procedural), not on real AVE videos" in warning.group(1)
    assert "labels of other videos are not meaningful" in warning.group(1)
    assert "trained on SynthAVE (embedded, procedural), on features of its finetuned towers" in page
    assert "fine-tuned by stage A on the 12 videos of its data cache, kept epoch 3" in page
    moved = shutil.move(out, tmp_path / "elsewhere" / "pred")  # and the original video gone: the folder stands alone
    shutil.rmtree(video.parent)
    src = re.search(r'<video [^>]*src="([^"]+)"', (Path(moved) / "video.html").read_text()).group(1)
    played = (Path(moved) / src).resolve()
    assert played.is_file() and played.parent == Path(moved).resolve()


def test_cli_predict_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    ckpt = save_localizer(tmp_path / "loc.pt")
    rc = main(["predict", str(bad), "--checkpoint", str(ckpt), "--audioclip-profile", "small",
               "--out", str(tmp_path / "out"), "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0
    assert "broken.mp4" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    rc = main(["predict", str(tmp_path / "missing.mp4"), "--checkpoint", str(ckpt), "--audioclip-profile", "small",
               "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    assert rc != 0 and "missing.mp4" in capsys.readouterr().err
