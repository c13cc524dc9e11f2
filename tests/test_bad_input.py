"""Bad input, file by file: each case of the table docs/faults.md "Bad input" with what happens to it.

Videos go through the decoder (the decode stage lists unusable ones in its failure table and decodes
the rest) and through `predict` (exit code 2 and one line naming the file for unusable ones).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avelib.__main__ import main
from avelib.data import ave, synth
from avelib.data.cache import DecodeConfig, SegmentCache, build_cache
from avelib.data.media import DecodeError, decode_video
from avelib.predict import load_localizer
from avelib.train.checkpointing import load_torch

from test_predict import save_localizer

K, S, R = 2, 16, 8000


def write_video(path: Path, seconds: float = 10.0, fps: int = 4, size: tuple[int, int] = (32, 24), audio: bool = True,
                video_streams: int = 1, vfr: bool = False, codec: str = "libx264", pix: str = "yuv420p") -> Path:
    """A test clip: grey ramp frames (+ a 440 Hz tone); `vfr` jitters the frame times."""
    with av.open(str(path), "w", format="mp4" if path.suffix == ".m4a" else None) as out:
        streams = []
        for _ in range(video_streams):
            vs = out.add_stream(codec, rate=1000 if vfr else fps)  # vfr: millisecond frame times
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], pix
            if codec == "libx264":
                vs.options = {"bf": "0"}
            streams.append(vs)
        aus = out.add_stream("aac", rate=R, layout="mono") if audio else None  # every stream before muxing
        times = np.arange(int(seconds * fps)) / fps
        if vfr:
            times = times + np.random.default_rng(0).uniform(0, 0.6 / fps, len(times))
        for i, t in enumerate(times if streams else []):
            for vs in streams:
                f = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), (7 * i) % 255, np.uint8), format="rgb24")
                f.pts, f.time_base = int(round(1000 * t)), Fraction(1, 1000)
                out.mux(vs.encode(f))
        if aus is not None:
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * R)) / R)).astype(np.float32)
            for lo in range(0, len(wave), 1024):
                fr = av.AudioFrame.from_ndarray(wave[None, lo : lo + 1024], format="fltp", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = R, lo, Fraction(1, R)
                out.mux(aus.encode(fr))
            out.mux(aus.encode(None))
        for vs in streams:
            out.mux(vs.encode(None))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = write_video(d / "good.mp4")
    data = good.read_bytes()
    (d / "zero.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    middle = bytearray(data)
    middle[len(data) // 2 : len(data) // 2 + 2000] = np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes()
    (d / "corrupted.mp4").write_bytes(bytes(middle))
    (d / "text.mp4").write_text("not a video at all\n")
    return {
        "good": good, "zero": d / "zero.mp4", "truncated": d / "truncated.mp4", "corrupted": d / "corrupted.mp4",
        "text": d / "text.mp4",
        "no_audio": write_video(d / "no_audio.mp4", audio=False),
        "audio_only": write_video(d / "audio_only.m4a", video_streams=0),
        "short": write_video(d / "short.mp4", seconds=3),
        "long": write_video(d / "long.mp4", seconds=14),
        "vfr": write_video(d / "vfr.mp4", vfr=True),
        "two_streams": write_video(d / "two_streams.mp4", video_streams=2),
        "1x1": write_video(d / "one_pixel.mov", size=(1, 1), codec="png", pix="rgb24"),
        "7680x4320": write_video(d / "huge.mp4", seconds=1, fps=1, size=(7680, 4320)),
    }  # fmt: skip


UNUSABLE = {  # case -> the cause named in the one error line
    "zero": "empty file (0 bytes)",
    "truncated": "not a readable media file",
    "corrupted": "decoding failed (corrupt or truncated stream)",
    "text": "not a readable media file",
    "audio_only": "no video stream",
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_unusable_video_names_file_and_cause(videos: dict[str, Path], case: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_video(videos[case], frames_per_second=K, image_size=S, sample_rate=R)
    assert str(videos[case]) in str(err.value) and UNUSABLE[case] in str(err.value)


def test_usable_odd_videos_decode_to_ten_seconds(videos: dict[str, Path]) -> None:
    got = {c: decode_video(videos[c], frames_per_second=K, image_size=S, sample_rate=R)
           for c in ("no_audio", "short", "long", "vfr", "two_streams", "1x1", "7680x4320")}
    for case, d in got.items():
        assert d.frames.shape == (10, K, S, S, 3) and d.audio.shape == (10, R), case
    assert d.info["width"] == 7680 and d.info["height"] == 4320
    assert got["no_audio"].info["warnings"] == ["no audio track: audio is silence"] and not got["no_audio"].audio.any()
    assert got["short"].info["padded_s"] == pytest.approx(7.0) and not got["short"].frames[3:].any()
    assert got["long"].info["trimmed_s"] == pytest.approx(4.0)
    assert 4.0 < got["vfr"].info["fps"] < 4.5  # the mean rate; frames are picked by their own times
    assert got["1x1"].info["width"] == 1 and got["1x1"].frames.std() > 0  # upscaled, not zero
    assert got["two_streams"].info["warnings"] == []  # the first video stream is decoded


def test_decode_stage_lists_unusable_videos_and_decodes_the_rest(videos: dict[str, Path], tmp_path: Path) -> None:
    cases = sorted(videos)
    root = synth.generate(synth.SynthConfig(num_videos=len(cases), image_size=16, fps=2, sample_rate=R, workers=1,
                                            split_fractions=(0.5, 0.25, 0.25)), tmp_path / "ds", progress=False)
    ds = ave.load_dataset(root)
    for i, case in enumerate(cases):
        shutil.copyfile(videos[case], ds.video_path(i))
    cfg = DecodeConfig(frames_per_second=K, image_size=S, sample_rate=R, workers=1, max_failed_fraction=1.0)
    cache = SegmentCache.open(build_cache(root, tmp_path / "cache", cfg, progress=False))
    failed = {cases[i] for i in np.flatnonzero(~np.asarray(cache.ok))}
    assert failed == set(UNUSABLE)
    causes = {Path(f["file"]).name: f["cause"] for f in cache.meta["failures"]}
    for i, case in enumerate(cases):
        if case in UNUSABLE:
            assert UNUSABLE[case] in causes[ds.video_path(i).name]
    with pytest.raises(RuntimeError, match="5 of 13 videos failed to decode"):  # over the budget: no cache at all
        build_cache(root, tmp_path / "cache2", dataclasses.replace(cfg, max_failed_fraction=0.1), progress=False)
    assert not (tmp_path / "cache2").exists()


def _predict(video: Path, tmp_path: Path, checkpoint: Path, *extra: str) -> int:
    return main(["predict", str(video), "--checkpoint", str(checkpoint), "--audioclip-profile", "small",
                 "--out", str(tmp_path / "out" / video.stem), "--params", str(tmp_path / "absent.yaml"), *extra])


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_predict_refuses_unusable_video_with_exit_2(videos, case, tmp_path, capsys) -> None:
    rc = _predict(videos[case], tmp_path, save_localizer(tmp_path / "loc.pt"))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(videos[case]) in lines[0] and UNUSABLE[case] in lines[0]
    assert not (tmp_path / "out").exists()


def test_predict_without_audio_reports_the_missing_modality(videos, tmp_path, capsys) -> None:
    import json

    rc = _predict(videos["no_audio"], tmp_path, save_localizer(tmp_path / "loc.pt"))
    out = capsys.readouterr().out
    assert rc == 0 and "10 s" in out and "audio missing: no audio-visual event is possible" in out
    labels = json.loads((tmp_path / "out" / "no_audio" / "labels.json").read_text())
    assert labels["missing_modality"] == "audio" and {r["category"] for r in labels["labels"]} == {"background"}


def test_predict_short_video_covers_its_real_seconds(videos, tmp_path, capsys) -> None:
    rc = _predict(videos["short"], tmp_path, save_localizer(tmp_path / "loc.pt"))
    assert rc == 0 and f"{videos['short']}: 3 s" in capsys.readouterr().out


def test_predict_says_what_the_checkpoint_was_trained_on(videos, tmp_path, capsys) -> None:
    ck = save_localizer(tmp_path / "loc.pt")
    state = torch.load(ck, weights_only=True)
    torch.save({**state, "dataset": "SynthAVE (embedded, procedural)"}, ck)
    assert _predict(videos["good"], tmp_path, ck) == 0
    err = capsys.readouterr().err
    assert "trained on SynthAVE (embedded, procedural), not on real AVE videos" in err
    torch.save({**state, "dataset": "AVE"}, ck)
    assert _predict(videos["good"], tmp_path, ck) == 0 and "trained on" not in capsys.readouterr().err


class _Foreign:  # a class instance: weights_only=True refuses to unpickle it
    pass


def test_checkpoints_each_get_their_own_message(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": _Foreign()}, unsafe)
    with pytest.raises(ValueError, match=r"unsafe\.pt: refused by torch\.load\(weights_only=True\)"):
        load_torch(unsafe)
    good = save_localizer(tmp_path / "loc.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"truncated\.pt: not a readable torch checkpoint \(truncated"):
        load_localizer(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match=r"foreign\.pt: not a localizer checkpoint: missing key"):
        load_localizer(foreign)


def test_predict_refuses_a_malicious_checkpoint_in_one_line_and_runs_nothing(videos, tmp_path, capsys) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": Payload()}, evil)
    assert _predict(videos["good"], tmp_path, evil) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("warning: RANDOM-INIT")]
    assert len(errors) == 1 and "evil.pt: refused by torch.load(weights_only=True)" in errors[0]
    assert "(posix.system)" in errors[0] and "weights_only=False" not in err  # no advice to run it anyway
    assert not (tmp_path / "pwned").exists()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(save_localizer(tmp_path / "loc.pt").read_bytes()[:1000])
    assert _predict(videos["good"], tmp_path, truncated) == 2
    assert "truncated.pt: not a readable torch checkpoint" in capsys.readouterr().err


def test_localizer_of_another_profile_is_refused(videos, tmp_path, capsys) -> None:
    paper = save_localizer(tmp_path / "paper.pt", dim=1024)  # a paper-profile localizer, small towers
    assert _predict(videos["good"], tmp_path, paper) == 2
    err = capsys.readouterr().err
    assert "paper.pt: the localizer expects audio/visual features of size 1024/1024, the towers give 128/128" in err
