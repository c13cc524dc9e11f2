"""Stage B (per-second feature extraction) on a tiny synthetic segment cache with the real small towers."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from avelib.data.cache import SegmentCache
from avelib.data.features import FEATURE_FILES, KEY, load_feature_set, read_features
from avelib.models.audioclip import build_audioclip, normalize_frames
from avelib.stages.towers import run_extract
from avelib.train.extract import ExtractConfig, extract_features, frame_indices
from test_contrastive import FAILED, K, make_dataset  # the same tiny dataset builder


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> SegmentCache:
    _, cache_dir = make_dataset(tmp_path_factory.mktemp("ds"), n=14)
    return SegmentCache.open(cache_dir)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_audioclip("small", None).eval()


@pytest.fixture(scope="module")
def extracted(cache, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("feat") / "frozen"
    # batch 6 = 3 seconds of 2 frames: chunks straddle videos
    return extract_features(model, cache, ExtractConfig(batch_size=6, device="cpu"), out, progress=False)


def test_files_shapes_and_key(extracted, cache):
    out = extracted.out_dir
    e = build_audioclip("small", None).config.embed_dim
    for name in ("audio.h5", "visual_mean.h5", "visual_single.h5"):
        with h5py.File(out / name, "r") as f:
            assert list(f.keys()) == [KEY]
            assert f[KEY].shape == (len(cache.ok), 10, e) and f[KEY].dtype == np.float32
    audio, vis = load_feature_set(out, "mean")
    np.testing.assert_array_equal(vis, extracted.visual_mean)
    np.testing.assert_array_equal(audio, extracted.audio)
    assert not list(out.parent.glob(".*tmp"))  # atomic write left no temp folder


@torch.inference_mode()
def test_features_equal_direct_tower_outputs(extracted, cache, model):
    for v in (0, 5, 12):
        frames = torch.from_numpy(np.array(cache.frames[v]))  # [10,K,S,S,3]
        per_frame = model.encode_image(normalize_frames(frames.reshape(-1, *frames.shape[2:])))  # [10K,E]
        per_frame = per_frame.reshape(10, K, -1).numpy()  # [10,K,E]
        np.testing.assert_allclose(extracted.visual_mean[v], per_frame.mean(axis=1), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(extracted.visual_single[v], per_frame[:, K // 2], rtol=1e-4, atol=1e-5)
        aud = model.encode_audio(torch.from_numpy(np.array(cache.audio[v]))).numpy()  # [10,E]
        np.testing.assert_allclose(extracted.audio[v], aud, rtol=1e-4, atol=1e-5)
    assert np.abs(extracted.visual_mean[0] - extracted.visual_single[0]).max() > 0  # mean is not one frame


def test_failed_videos_are_zero_and_reported(extracted, cache):
    assert extracted.failed == [FAILED]
    for arr in (extracted.audio, extracted.visual_mean, extracted.visual_single):
        assert not arr[FAILED].any()
        assert np.abs(arr[np.asarray(cache.ok)]).sum(axis=-1).min() > 0  # every decoded second encoded
    report = json.loads((extracted.out_dir / "extract_report.json").read_text())
    assert report["num_failed"] == 1
    assert report["failed"][0]["video_id"] == cache.video_ids[FAILED]
    assert report["failed"][0]["cause"] == "moov atom not found"
    assert report["single_frame_index"] == K // 2 and report["frames_averaged"] == list(range(K))
    assert not any(key.startswith("seconds") for key in report)  # no wall time: same features, same folder hash


def test_frame_indices():
    assert frame_indices(16, "all").tolist() == list(range(16))
    assert frame_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert frame_indices(4, 1).tolist() == [2]
    with pytest.raises(ValueError, match="extract.frames"):
        frame_indices(4, 5)


def test_subset_of_frames(cache, model, tmp_path):
    res = extract_features(model, cache, ExtractConfig(batch_size=8, frames=1, device="cpu"), tmp_path / "f", progress=False)
    # one frame, the centre one: mean == single
    np.testing.assert_array_equal(res.visual_mean, res.visual_single)


@torch.inference_mode()
def test_run_extract_frozen_uses_the_seeded_init(cache, tmp_path):
    params = {
        "audioclip": {"profile": "small", "checkpoint": None},
        "finetune": {"seed": 5},
        "extract": {"batch_size": 64, "device": "cpu"},
    }
    res = run_extract(params, cache.dir, None, tmp_path / "a", progress=False)
    torch.manual_seed(5)  # what fine-tuning starts from: the init seeded with finetune.seed
    start = build_audioclip("small", None).eval()
    direct = start.encode_audio(torch.from_numpy(np.array(cache.audio[1]))).numpy()  # [10,E]
    np.testing.assert_allclose(read_features(tmp_path / "a" / "audio.h5")[1], direct, rtol=1e-4, atol=1e-5)
    assert res.failed == [FAILED]


def test_worker_processes_give_the_same_features(cache, model, extracted, tmp_path):
    res = extract_features(model, cache, ExtractConfig(batch_size=6, num_workers=1, device="cpu"), tmp_path / "w",
                           progress=False)
    np.testing.assert_array_equal(res.visual_mean, extracted.visual_mean)
    np.testing.assert_array_equal(res.audio, extracted.audio)


def test_interrupted_extraction_is_continued_and_gives_the_same_files(cache, model, extracted, tmp_path, monkeypatch):
    import avelib.train.extract as E

    real, marked = E._mark_done, []

    def dies_after_two_chunks(done, chunk):  # a kill in the middle: two chunks are on disk
        if len(marked) == 2:
            raise KeyboardInterrupt
        marked.append(chunk)
        real(done, chunk)

    monkeypatch.setattr(E, "_mark_done", dies_after_two_chunks)
    cfg = ExtractConfig(batch_size=6, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        extract_features(model, cache, cfg, tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists()
    assert np.flatnonzero(np.load(tmp_path / "f.partial" / E.DONE)).tolist() == [0, 1]
    monkeypatch.setattr(E, "_mark_done", real)
    res = extract_features(model, cache, cfg, tmp_path / "f", progress=False)
    assert not (tmp_path / "f.partial").exists()
    for name in FEATURE_FILES.values():
        with h5py.File(tmp_path / "f" / name) as a, h5py.File(extracted.out_dir / name) as b:
            np.testing.assert_array_equal(a[KEY][()], b[KEY][()])
        assert (tmp_path / "f" / name).read_bytes() == (extracted.out_dir / name).read_bytes(), name
