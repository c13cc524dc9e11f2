"""Decode stage: build_cache on a tiny SynthAVE (ok, failures within / over budget) and SegmentCache."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avelib.data import ave, synth
from avelib.data.cache import FAILURES_SUFFIX, DecodeConfig, SegmentCache, build_cache
from avelib.data.media import decode_video

TINY = synth.SynthConfig(num_videos=6, image_size=32, fps=4, sample_rate=8000, workers=1, seed=1)
DEC = DecodeConfig(frames_per_second=2, image_size=24, sample_rate=8000, workers=1, max_failed_fraction=0.0)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.generate(TINY, tmp_path_factory.mktemp("syn") / "synthave", progress=False)


def _copy(root: Path, dst: Path) -> Path:
    shutil.copytree(root, dst)
    return dst


def test_build_and_open(tiny_root: Path, tmp_path: Path) -> None:
    out = build_cache(tiny_root, tmp_path / "cache", DEC, progress=False)
    c = SegmentCache.open(out)
    assert c.frames.shape == (6, 10, 2, 24, 24, 3) and c.frames.dtype == np.uint8
    assert c.audio.shape == (6, 10, 8000) and c.audio.dtype == np.float32
    assert not c.frames.flags.writeable
    assert c.ok.tolist() == [True] * 6 and c.meta["failures"] == []
    ds = ave.load_dataset(tiny_root)
    assert c.video_ids == [r.video_id for r in ds.records]
    assert (c.frames_per_second, c.image_size, c.sample_rate) == (2, 24, 8000)
    assert len(c.meta["videos"]) == 6 and c.meta["videos"][0]["padded_s"] == 0
    # rows equal a direct decode of the same file
    d = decode_video(ds.video_path(4), 2, 24, 8000)
    np.testing.assert_array_equal(c.frames[4], d.frames)
    np.testing.assert_array_equal(c.audio[4], d.audio)
    assert (out / "report.txt").read_text().startswith("records: 6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no temp dir left


def test_parallel_workers_same_result(tiny_root: Path, tmp_path: Path) -> None:
    a = SegmentCache.open(build_cache(tiny_root, tmp_path / "a", DEC, progress=False))
    b = SegmentCache.open(build_cache(tiny_root, tmp_path / "b", dataclasses.replace(DEC, workers=2), progress=False))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)


def test_failures_recorded_within_budget(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path / "ds")
    ds = ave.load_dataset(root)
    ds.video_path(1).write_text("not a video")
    ds.video_path(3).unlink()
    out = build_cache(root, tmp_path / "cache", dataclasses.replace(DEC, max_failed_fraction=0.5), progress=False)
    c = SegmentCache.open(out)
    assert c.ok.tolist() == [True, False, True, False, True, True]
    assert np.all(c.frames[1] == 0) and np.all(c.audio[3] == 0) and c.frames[0].any()
    causes = {Path(f["file"]).name: f["cause"] for f in c.meta["failures"]}
    assert set(causes) == {ds.video_path(1).name, ds.video_path(3).name}
    assert "not a readable media file" in causes[ds.video_path(1).name]
    assert "file not found" in causes[ds.video_path(3).name]
    assert c.meta["videos"][1]["error"] == causes[ds.video_path(1).name]
    assert "failures: 2" in (out / "report.txt").read_text()


def test_too_many_failures_leaves_no_cache(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path / "ds")
    ave.load_dataset(root).video_path(2).write_bytes(b"")
    cfg = dataclasses.replace(DEC, max_failed_fraction=0.1)  # 1 of 6 = 16.7% > 10%
    with pytest.raises(RuntimeError, match=r"1 of 6 videos failed .* no cache written"):
        build_cache(root, tmp_path / "cache", cfg, progress=False)
    assert not (tmp_path / "cache").exists()
    # the decoded files stay in the partial cache (named so), for a rerun with a larger budget
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache" + FAILURES_SUFFIX, "cache.partial", "ds"]
    report = json.loads((tmp_path / ("cache" + FAILURES_SUFFIX)).read_text())
    assert "empty file" in report["failures"][0]["cause"]
    with pytest.raises(FileNotFoundError, match="not found"):
        SegmentCache.open(tmp_path / "cache")
    # a later successful run removes the stale failure report and the partial cache
    build_cache(root, tmp_path / "cache", dataclasses.replace(cfg, max_failed_fraction=0.5), progress=False)
    assert not (tmp_path / ("cache" + FAILURES_SUFFIX)).exists() and not (tmp_path / "cache.partial").exists()
    assert SegmentCache.open(tmp_path / "cache").ok.tolist() == [True, True, False, True, True, True]


def test_interrupted_decode_is_continued_and_gives_the_same_cache(tiny_root: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import avelib.data.cache as C

    whole = build_cache(tiny_root, tmp_path / "whole", DEC, progress=False)
    calls = {"n": 0}
    real = C._decode_one

    def dies_after_three(job):  # an interruption in the middle: 3 of 6 files are decoded and logged
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(C, "_decode_one", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_cache(tiny_root, tmp_path / "cache", DEC, progress=False)
    assert not (tmp_path / "cache").exists() and len((tmp_path / "cache.partial" / C.DECODED_LOG).read_text().splitlines()) == 3
    monkeypatch.setattr(C, "_decode_one", lambda job: (calls.__setitem__("n", calls["n"] + 1), real(job))[1])
    calls["n"] = 0
    build_cache(tiny_root, tmp_path / "cache", DEC, progress=False)
    assert calls["n"] == 3  # only the other three were decoded
    for name in ("frames.npy", "audio.npy", "meta.json"):
        assert (tmp_path / "cache" / name).read_bytes() == (whole / name).read_bytes(), name


def test_duplicate_video_ids_share_one_decode(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path / "ds")
    recs = ave.read_annotations(root / "Annotations.txt")
    first = recs[0]
    # AVE reuses a video id with another category: a 7th record pointing at the first video
    other = ave.CATEGORIES[(first.label + 1) % 28]
    extra = f"{other}&{first.video_id}&good&0&10"
    (root / "Annotations.txt").write_text((root / "Annotations.txt").read_text() + extra + "\n")
    (root / "testSet.txt").write_text((root / "testSet.txt").read_text() + extra + "\n")
    c = SegmentCache.open(build_cache(root, tmp_path / "cache", DEC, progress=False))
    assert len(c) == 7 and c.ok.all()
    np.testing.assert_array_equal(c.frames[6], c.frames[0])


def test_open_incomplete_cache(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    np.save(tmp_path / "c" / "frames.npy", np.zeros((1, 10, 1, 2, 2, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"incomplete segment cache, missing \['audio.npy', 'meta.json'\]"):
        SegmentCache.open(tmp_path / "c")
    np.save(tmp_path / "c" / "audio.npy", np.zeros((1, 10, 5), np.float32))
    meta = {"video_ids": ["a"], "ok": [True], "frames_per_second": 1, "image_size": 2, "sample_rate": 4}
    (tmp_path / "c" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"audio.npy: shape"):
        SegmentCache.open(tmp_path / "c")
