"""Feature files: our [N,10,E] h5 layout and the classic AVE release layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from avelib.data.features import (
    FeatureFileError,
    load_classic_features,
    load_classic_splits,
    load_feature_set,
    read_features,
    synthetic_features,
    write_features,
)


def test_write_read_roundtrip_float32(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 10, 7))  # float64 in
    write_features(tmp_path / "a.h5", x)
    y = read_features(tmp_path / "a.h5")
    assert y.dtype == np.float32 and y.shape == (5, 10, 7)
    np.testing.assert_allclose(y, x.astype(np.float32))
    with h5py.File(tmp_path / "a.h5") as f:
        assert list(f.keys()) == ["avadataset"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]  # no temp files left behind


def test_write_is_byte_identical_across_time(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 10, 4))
    write_features(tmp_path / "a.h5", x)
    with h5py.File(tmp_path / "a.h5") as f:
        assert h5py.h5o.get_info(f["avadataset"].id).ctime == 0  # no creation time stored
    write_features(tmp_path / "b.h5", x)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_write_rejects_wrong_shape(tmp_path):
    with pytest.raises(FeatureFileError, match="b.h5"):
        write_features(tmp_path / "b.h5", np.zeros((5, 9, 3)))
    assert not (tmp_path / "b.h5").exists()


def test_read_errors_name_the_file(tmp_path):
    with h5py.File(tmp_path / "wrongkey.h5", "w") as f:
        f["features"] = np.zeros((2, 10, 3))
    with pytest.raises(FeatureFileError, match=r"wrongkey\.h5.*avadataset"):
        read_features(tmp_path / "wrongkey.h5")
    with h5py.File(tmp_path / "rank.h5", "w") as f:
        f["avadataset"] = np.zeros((2, 10))
    with pytest.raises(FeatureFileError, match=r"rank\.h5.*rank 3"):
        read_features(tmp_path / "rank.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_features(tmp_path / "missing.h5")


def test_load_feature_set_mean_and_single(tmp_path):
    rng = np.random.default_rng(1)
    a, vm, vs = rng.normal(size=(4, 10, 6)), rng.normal(size=(4, 10, 8)), rng.normal(size=(4, 10, 8))
    write_features(tmp_path / "audio.h5", a)
    write_features(tmp_path / "visual_mean.h5", vm)
    write_features(tmp_path / "visual_single.h5", vs)
    audio, visual = load_feature_set(tmp_path, "mean")
    assert audio.shape == (4, 10, 6) and visual.shape == (4, 10, 8)
    np.testing.assert_allclose(visual, vm.astype(np.float32))
    _, single = load_feature_set(tmp_path, "single")
    np.testing.assert_allclose(single, vs.astype(np.float32))
    write_features(tmp_path / "visual_single.h5", vs[:3])
    with pytest.raises(FeatureFileError, match="rows"):
        load_feature_set(tmp_path, "single")


def _write_classic(d, n=5):
    rng = np.random.default_rng(2)
    vis = rng.normal(size=(n, 10, 7, 7, 512))  # float64 like the release
    aud = rng.normal(size=(n, 10, 128))
    lab = np.zeros((n, 10, 29), dtype=np.float32)
    y = rng.integers(0, 29, size=(n, 10))
    lab[np.arange(n)[:, None], np.arange(10)[None], y] = 1
    for name, arr in (("visual_feature.h5", vis), ("audio_feature.h5", aud), ("labels.h5", lab)):
        with h5py.File(d / name, "w") as f:
            f.create_dataset("avadataset", data=arr)
    for split, idx in (("train", [0, 1, 2]), ("val", [3]), ("test", [4])):
        with h5py.File(d / f"{split}_order.h5", "w") as f:
            f["order"] = np.array(idx, dtype=np.int64)
    return vis, aud, y


def test_classic_loader_pools_in_chunks(tmp_path):
    vis, aud, y = _write_classic(tmp_path)
    feats = load_classic_features(tmp_path, keep_regions=True, chunk=2)  # chunk < N exercises the loop
    assert feats.visual.shape == (5, 10, 512) and feats.visual.dtype == np.float32
    np.testing.assert_allclose(feats.visual, vis.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    assert feats.regions.shape == (5, 10, 49, 512) and feats.regions.dtype == np.float32
    np.testing.assert_allclose(feats.regions[1, 2, 7 * 3 + 4], vis[1, 2, 3, 4], rtol=1e-6)  # row-major 7x7
    assert feats.audio.shape == (5, 10, 128) and feats.audio.dtype == np.float32
    np.testing.assert_array_equal(feats.labels, y)
    assert load_classic_features(tmp_path).regions is None
    splits = load_classic_splits(tmp_path)
    assert splits["train"].tolist() == [0, 1, 2] and splits["test"].tolist() == [4]


def test_classic_loader_rejects_wrong_visual_rank(tmp_path):
    _write_classic(tmp_path)
    with h5py.File(tmp_path / "visual_feature.h5", "w") as f:
        f["avadataset"] = np.zeros((5, 10, 512))
    with pytest.raises(FeatureFileError, match=r"visual_feature\.h5"):
        load_classic_features(tmp_path)


def test_synthetic_features_need_both_modalities():
    a, v, y, splits = synthetic_features(n=60, seed=3)
    assert a.shape == (60, 10, 32) and v.shape == (60, 10, 48) and y.shape == (60, 10)
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(60))
    # each video carries one event class, background elsewhere
    for row in y:
        assert len(set(row[row != 28].tolist())) <= 1
    assert 0.1 < (y == 28).mean() < 0.9
