"""Numerical conformance of the AudioCLIP towers with the official code (../shared/conformance/audioclip).

The stand-in checkpoint is rebuilt from keys.tsv by the README's rule, saved like a real
AudioCLIP-Full-Training.pt and loaded through the public loader; our outputs must match the
official ones within the README tolerances (raw and batch-centered).
"""

from __future__ import annotations

import gc
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from avelib.models.audioclip import AudioCLIP, CheckpointError, preprocess_image
from avelib.models.esresnext import blackman_harris

RAW_TOL = 1e-3  # max|ours - ref| <= RAW_TOL * max|ref|
CENTERED_TOL = 1e-2  # same on batch-centered outputs
PREPROCESS_TOL = 0.02  # mean |ours - ref| of preprocessed images


@pytest.fixture(scope="session")
def conf_dir(shared_dir: Path) -> Path:
    d = shared_dir / "conformance" / "audioclip"
    if not (d / "keys.tsv").is_file():
        pytest.skip(f"{d}: AudioCLIP conformance data absent")
    return d


def _read_keys(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype"], f"{path}: unexpected header {lines[0]!r}"
    for line in lines[1:]:
        key, shape, dtype = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        rows.append((key, dims, dtype))
    return rows


def _standin_value(key: str, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """The README's rule: first matching rule wins, drawn in float64, then cast."""
    last = key.rsplit(".", 1)[-1]
    tdtype = getattr(torch, dtype)
    if dtype == "int64":
        return torch.zeros(shape, dtype=tdtype)
    if key.endswith("audio.window"):
        return blackman_harris(shape[0]).to(tdtype)
    n = np.random.default_rng(zlib.crc32(key.encode("utf-8"))).standard_normal(size=shape)
    if last == "running_var":
        v = 0.5 + 0.5 * np.abs(n)
    elif last == "running_mean":
        v = 0.1 * n
    elif key.endswith("fbsp.m"):
        v = 0.5 + 0.1 * n
    elif key.endswith("fbsp.fb"):
        v = 1.0 + 0.1 * n
    elif key.endswith("fbsp.fc"):
        v = np.arange(shape[0]) + 0.1 * n
    elif last in ("logit_scale", "logit_scale_ai", "logit_scale_at"):
        v = np.full(shape, math.log(100.0))
    elif len(shape) >= 2:
        v = n / math.sqrt(float(np.prod(shape[1:])))
    elif len(shape) == 1 and last == "weight":
        v = 1.0 + 0.1 * n
    else:
        v = 0.1 * n
    return torch.from_numpy(np.asarray(v, dtype=np.float64)).to(tdtype)


@pytest.fixture(scope="session")
def standin_path(conf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~540 MB float32 stand-in of AudioCLIP-Full-Training.pt, built once per session."""
    keys = _read_keys(conf_dir / "keys.tsv")
    state = {key: _standin_value(key, shape, dtype) for key, shape, dtype in keys}
    path = tmp_path_factory.mktemp("audioclip") / "AudioCLIP-Full-Training.pt"
    torch.save(state, path)
    del state
    gc.collect()
    return path


@pytest.fixture(scope="session")
def conf_model(standin_path: Path) -> AudioCLIP:
    return AudioCLIP.from_checkpoint(standin_path)


@pytest.fixture(scope="session")
def conf_io(conf_dir: Path, conf_model: AudioCLIP) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (ours, reference), computed once."""
    inputs = np.load(conf_dir / "inputs.npz")
    ref = np.load(conf_dir / "outputs.npz")
    torch.set_grad_enabled(False)
    try:
        # the official tower got the int16 samples as floats; ours takes [-1, 1] and scales inside
        a5 = conf_model.encode_audio(torch.from_numpy(inputs["audio_5s"].astype(np.float32) / 32768.0))
        a1 = conf_model.encode_audio(torch.from_numpy(inputs["audio_1s"].astype(np.float32) / 32768.0))
        im = conf_model.encode_image(torch.from_numpy(inputs["images"]))
        logits = conf_model.audio_image_logits(a1, im)
    finally:
        torch.set_grad_enabled(True)
    ours = {"audio_5s_embed": a5, "audio_1s_embed": a1, "image_embed": im, "logits_audio_image": logits}
    return {k: (v.numpy(), ref[k]) for k, v in ours.items()}


@pytest.mark.parametrize("name", ["audio_5s_embed", "audio_1s_embed", "image_embed", "logits_audio_image"])
def test_output_matches_official(conf_io, name: str) -> None:
    ours, ref = conf_io[name]
    assert ours.shape == ref.shape
    err = np.abs(ours - ref).max()
    assert err <= RAW_TOL * np.abs(ref).max(), f"{name}: max err {err:.3g} vs max|ref| {np.abs(ref).max():.3g}"
    ours_c, ref_c = ours - ours.mean(0), ref - ref.mean(0)
    err_c = np.abs(ours_c - ref_c).max()
    assert err_c <= CENTERED_TOL * np.abs(ref_c).max(), (
        f"{name}: centered max err {err_c:.3g} vs max|ref_c| {np.abs(ref_c).max():.3g}"
    )


def test_preprocess_image_matches_official(conf_dir: Path) -> None:
    inputs = np.load(conf_dir / "inputs.npz")
    ours = torch.stack([preprocess_image(img, 224) for img in inputs["images_u8"]]).numpy()
    ref = inputs["images"]
    assert ours.shape == ref.shape == (3, 3, 224, 224)
    assert np.abs(ours - ref).mean() <= PREPROCESS_TOL


def test_text_tower_keys_ignored(conf_model: AudioCLIP, conf_dir: Path) -> None:
    keys = [k for k, _, _ in _read_keys(conf_dir / "keys.tsv")]
    text = [k for k in keys if not k.startswith(("visual.", "audio.")) and k != "logit_scale_ai"]
    assert "token_embedding.weight" in text and "logit_scale_at" in text
    ignored = set(conf_model.load_report["ignored"])
    assert set(text) <= ignored
    assert conf_model.load_report["computed"] == [] and conf_model.load_report["fresh"] == []
    assert not conf_model.training  # loaders return eval mode, as the reference was made


def test_missing_visual_key_raises(standin_path: Path, tmp_path: Path) -> None:
    state = torch.load(standin_path, map_location="cpu", weights_only=True, mmap=True)
    towers = {k: v for k, v in state.items() if k.startswith(("visual.", "audio.")) or k == "logit_scale_ai"}
    del towers["visual.layer3.2.bn2.running_var"]
    bad = tmp_path / "AudioCLIP-broken.pt"
    torch.save(towers, bad)
    del state, towers
    with pytest.raises(CheckpointError, match=r"visual\.layer3\.2\.bn2\.running_var") as err:
        AudioCLIP.from_checkpoint(bad)
    assert str(bad) in str(err.value)
