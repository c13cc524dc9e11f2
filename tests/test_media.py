"""PyAV decoding of real clips (pad / trim, 6-channel AAC, MP3) and of broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from avelib.data.media import DecodeError, decode_video, frame_rgb

SHORT = "bbb_5s_6ch_48k.mp4"  # 5.31 s, 1280x720 25 fps, AAC 6 ch 48 kHz
TRAILER = "bbb_trailer_55s.mp4"  # 55.1 s, 1280x720 24 fps, MP3 stereo 44.1 kHz


@pytest.fixture(scope="module")
def media(shared_dir: Path) -> Path:
    d = shared_dir / "media"
    if not (d / SHORT).is_file() or not (d / TRAILER).is_file():
        pytest.skip(f"{d}: real test clips are absent")
    return d


def test_short_clip_padded(media: Path) -> None:
    d = decode_video(media / SHORT, frames_per_second=4, image_size=32, sample_rate=16000)
    assert d.frames.shape == (10, 4, 32, 32, 3) and d.frames.dtype == np.uint8
    assert d.audio.shape == (10, 16000) and d.audio.dtype == np.float32
    info = d.info
    assert info["audio_channels"] == 6 and info["audio_rate"] == 48000 and info["audio_codec"] == "aac"
    assert (info["width"], info["height"], info["fps"]) == (1280, 720, 25.0)
    assert info["padded_s"] == pytest.approx(10 - 5.312, abs=0.01) and info["trimmed_s"] == 0
    rms = np.sqrt((d.audio**2).mean(1))  # [10]
    assert (rms[:5] > 1e-3).all()  # the clip has sound in each of its whole seconds
    assert np.all(d.audio[5, int(0.32 * 16000) :] == 0) and np.all(d.audio[6:] == 0)  # padding is silence
    assert np.abs(d.audio).max() <= 1.0
    # picture in the covered seconds (the partial second holds its last frame), black padding after
    assert (d.frames[:6].reshape(6, -1).mean(1) > 20).all()
    assert np.all(d.frames[6:] == 0)
    # frames of a second differ (uniform sampling in time, not one repeated frame)
    assert not np.array_equal(d.frames[1, 0], d.frames[1, 3])


def test_short_clip_seconds_none(media: Path) -> None:
    d = decode_video(media / SHORT, frames_per_second=2, image_size=24, sample_rate=8000, seconds=None)
    assert d.frames.shape == (6, 2, 24, 24, 3) and d.audio.shape == (6, 8000)
    assert d.info["padded_s"] == pytest.approx(6 - 5.312, abs=0.01)


def test_trailer_trimmed_mp3(media: Path) -> None:
    d = decode_video(media / TRAILER, frames_per_second=3, image_size=40, sample_rate=22050, seconds=10)
    assert d.frames.shape == (10, 3, 40, 40, 3) and d.audio.shape == (10, 22050)
    assert d.info["audio_codec"].startswith("mp3") and d.info["audio_channels"] == 2
    assert d.info["trimmed_s"] == pytest.approx(45.125, abs=0.05) and d.info["padded_s"] == 0
    assert (np.sqrt((d.audio**2).mean(1)) > 1e-4).all()
    assert (d.frames.reshape(10, -1).mean(1) > 20).all()


def test_resize_is_center_crop_of_shorter_side(media: Path) -> None:
    # 16:9 -> shorter side S: the crop keeps the middle; compare with PIL on the same PyAV-decoded frame
    d = decode_video(media / SHORT, frames_per_second=1, image_size=36, sample_rate=8000, seconds=1)
    with av.open(str(media / SHORT)) as c:
        for fr in c.decode(video=0):
            if fr.time >= 0.5 - 1e-6:
                break
            prev = fr
    # shorter side 720 -> 36, longer 1280 -> 64, columns 14..49 kept; PIL's bicubic as CLIP resizes
    ref = np.asarray(Image.fromarray(frame_rgb(prev)).resize((64, 36), Image.BICUBIC))[:, 14:50]
    assert np.abs(d.frames[0, 0].astype(int) - ref).max() <= 2  # torchvision's uint8 bicubic: within 2 levels of PIL


def _video_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=5)
        vs.width, vs.height, vs.pix_fmt = 48, 32, "yuv420p"
        for i in range(12):
            img = np.full((32, 48, 3), 20 * i, np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 5)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    return path


def test_video_without_audio_gives_silence_and_warning(tmp_path: Path) -> None:
    d = decode_video(_video_only(tmp_path / "noaudio.mp4"), frames_per_second=2, image_size=16, sample_rate=8000)
    assert d.audio.shape == (10, 8000) and np.all(d.audio == 0)
    assert any("no audio" in w for w in d.info["warnings"])
    assert d.info["audio_channels"] == 0 and d.info["padded_s"] == pytest.approx(7.6, abs=0.01)
    assert d.frames.shape == (10, 2, 16, 16, 3) and d.frames[:3].mean() > 0 and np.all(d.frames[3:] == 0)
    # frame at 0.25 s is frame 1 (t = 0.2 s), the one at 0.75 s is frame 3 (t = 0.6 s)
    assert abs(int(d.frames[0, 0].mean()) - 20) <= 3 and abs(int(d.frames[0, 1].mean()) - 60) <= 3


def test_missing_and_empty_and_text_files(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match=r"nothere\.mp4: file not found"):
        decode_video(tmp_path / "nothere.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty\.mp4: empty file"):
        decode_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(DecodeError, match=r"text\.mp4: not a readable media file"):
        decode_video(tmp_path / "text.mp4")


def test_truncated_copy(media: Path, tmp_path: Path) -> None:
    data = (media / SHORT).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match=r"cut\.mp4: .*(truncated|not a readable)"):
        decode_video(cut)


def test_truncated_faststart_copy(media: Path, tmp_path: Path) -> None:
    # moov atom first (faststart): the cut file opens, but its data ends early
    fast = tmp_path / "fast.mp4"
    with av.open(str(media / SHORT)) as src, av.open(str(fast), "w", format="mp4", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        for pkt in src.demux(*[src.streams.video[0], src.streams.audio[0]]):
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            dst.mux(pkt)
    assert decode_video(fast, 1, 16, 8000).info["padded_s"] > 4  # the copy itself is fine
    data = fast.read_bytes()
    cut = tmp_path / "fastcut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(DecodeError, match=r"fastcut\.mp4: .*truncated"):
        decode_video(cut)


def test_audio_only_file_is_not_a_video(media: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "audio_only.mp4"
    with av.open(str(out_path), "w", format="mp4") as out:
        st = out.add_stream("aac", rate=8000, layout="mono")
        for i in range(0, 8000, 1024):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = 8000, i, Fraction(1, 8000)
            out.mux(st.encode(f))
        out.mux(st.encode(None))
    with pytest.raises(DecodeError, match=r"audio_only\.mp4: no video stream"):
        decode_video(out_path)


def test_bad_arguments(media: Path) -> None:
    with pytest.raises(ValueError):
        decode_video(media / SHORT, frames_per_second=0)
