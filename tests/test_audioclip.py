"""AudioCLIP towers: shapes per profile, checkpoint routes and their errors, gradients, preprocessing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avelib.models.audioclip import (
    AudioCLIP,
    AudioCLIPConfig,
    AudioCLIPParams,
    CheckpointError,
    build_audioclip,
    normalize_frames,
    preprocess_image,
    profile_config,
    save_checkpoint,
)
from avelib.models.esresnext import blackman_harris
from avelib.params import load_params, section

ROOT = Path(__file__).resolve().parents[1]
TEXT_KEYS = {  # a few official text-tower keys, to be accepted and ignored
    "positional_embedding": (77, 512),
    "token_embedding.weight": (10, 512),
    "transformer.resblocks.0.attn.in_proj_weight": (1536, 512),
    "ln_final.weight": (512,),
    "text_projection": (512, 1024),
    "logit_scale": (),
    "logit_scale_at": (),
}


@pytest.fixture(scope="module")
def small() -> AudioCLIP:
    torch.manual_seed(0)
    return build_audioclip("small")


def _official_layout(model: AudioCLIP) -> dict[str, torch.Tensor]:
    """Our state in the official AudioCLIP-*.pt layout: + text keys + the empty fbsp.bias."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state.update({k: torch.randn(shape) for k, shape in TEXT_KEYS.items()})
    state["audio.fbsp.bias"] = torch.empty(0)
    return state


def _inputs(cfg: AudioCLIPConfig, b: int, seconds: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    audio = torch.rand(b, int(cfg.sample_rate * seconds), generator=g) * 1.6 - 0.8  # [B,N]
    image = torch.randn(b, 3, cfg.image_size, cfg.image_size, generator=g)  # [B,3,S,S]
    return audio, image


def test_small_profile_shapes(small: AudioCLIP) -> None:
    cfg = small.config
    assert (cfg.image_size, cfg.sample_rate, cfg.embed_dim) == (64, 16000, 128)
    assert (cfg.win_length, cfg.hop_length, cfg.n_fft) == (600, 204, 744)
    audio, image = _inputs(cfg, 4)
    with torch.no_grad():
        a, i = small(audio, image)
        logits = small.audio_image_logits(a, i)
        stereo = small.encode_audio(torch.stack([audio, audio], dim=1))  # [B,2,N]
        short = small.encode_audio(audio[:, :300])  # shorter than one frame: one padded frame
    assert a.shape == i.shape == (4, 128) and logits.shape == (4, 4) and short.shape == (4, 128)
    assert torch.isfinite(a).all() and torch.isfinite(i).all()
    # cosine logits scaled by the clamped exp(log 100) = 100
    assert logits.abs().max() <= 100.0 + 1e-4
    with torch.no_grad():  # channels are pooled separately, then summed before fc
        expected = small.audio.fc(2 * _pooled(small, audio))
    assert torch.allclose(stereo, expected, rtol=1e-4, atol=1e-4)


def _pooled(model: AudioCLIP, audio: torch.Tensor) -> torch.Tensor:
    return model.audio.trunk(model.audio.spectrogram_db(audio * 32768.0))  # [B,F]


def test_paper_profile_shapes() -> None:
    torch.manual_seed(0)
    model = build_audioclip("paper")
    cfg = model.config
    assert (cfg.image_size, cfg.sample_rate, cfg.embed_dim) == (224, 44100, 1024)
    n_values = sum(t.numel() for t in model.state_dict().values())
    keys = set(model.state_dict())
    assert "visual.attnpool.positional_embedding" in keys and "audio.att5.conv_depth.weight" in keys
    assert model.state_dict()["visual.attnpool.positional_embedding"].shape == (50, 2048)
    assert model.state_dict()["audio.fbsp.fc"].shape == (1025,)
    assert 60e6 < n_values < 80e6  # the two towers of the 134M-value checkpoint (text excluded)
    audio, image = _inputs(cfg, 1)
    with torch.no_grad():
        db = model.audio.spectrogram_db(audio * 32768.0)
        a, i = model(audio[:, :22050], image)  # half a second keeps the trunk pass light
    assert db.shape == (1, 3, 341, 77)  # 3 bands of 341 bins, 77 frames per second at 44.1 kHz
    assert a.shape == i.shape == (1, 1024)


def test_encode_rejects_bad_input(small: AudioCLIP) -> None:
    with pytest.raises(ValueError, match="int16-range"):
        small.encode_audio(torch.full((1, 16000), 1000.0))
    with pytest.raises(ValueError, match=r"expected \[B, 3, 64, 64\]"):
        small.encode_image(torch.zeros(1, 3, 224, 224))


def test_gradients_reach_both_towers_and_fbsp() -> None:
    torch.manual_seed(0)
    model = build_audioclip("small").train()
    audio, image = _inputs(model.config, 4)
    a, i = model(audio, image)
    loss = model.audio_image_loss(a, i) + model.fbsp_loss()
    loss.backward()
    named = dict(model.named_parameters())
    for name in ("visual.conv1.weight", "visual.attnpool.c_proj.weight", "audio.conv1.weight",
                 "audio.att5.bn.weight", "audio.fc.weight", "audio.fbsp.m", "audio.fbsp.fb",
                 "audio.fbsp.fc"):
        g = named[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    # at its init log(100) the scale sits on the clamp (no gradient, as officially); below it learns
    assert named["logit_scale_ai"].grad.item() == 0.0
    with torch.no_grad():
        model.logit_scale_ai.fill_(math.log(20.0))
    model.zero_grad()
    model.audio_image_loss(*model(audio, image)).backward()
    assert named["logit_scale_ai"].grad.abs().item() > 0
    # FBSP gradients are max-norm normalized, as in the official layer
    assert named["audio.fbsp.fc"].grad.abs().max() == pytest.approx(1.0, abs=1e-4)


def test_fbsp_loss_zero_at_dft_init_and_positive_when_detuned(small: AudioCLIP) -> None:
    model = build_audioclip("small")
    assert model.fbsp_loss().item() == pytest.approx(0.0, abs=1e-6)  # DFT init: unit-norm filters
    with torch.no_grad():
        model.audio.fbsp.fb.mul_(2.0)
    assert model.fbsp_loss().item() > 0.1


def test_blackman_harris_periodic() -> None:
    w = blackman_harris(1654)
    assert w[0].item() == pytest.approx(0.35875 - 0.48829 + 0.14128 - 0.01168, abs=1e-12)
    assert w[827].item() == pytest.approx(1.0, abs=1e-12)  # peak at N/2 for the periodic window
    assert torch.allclose(w[1:], w[1:].flip(0))  # symmetric about N/2


def test_own_checkpoint_round_trip(small: AudioCLIP, tmp_path: Path) -> None:
    path = tmp_path / "ft" / "audioclip.pt"
    save_checkpoint(small, path, {"params": {"seed": 0}, "epoch": 3})
    loaded = AudioCLIP.from_checkpoint(path)
    assert loaded.config == small.config and not loaded.training
    assert loaded.load_report["extra"] == {"params": {"seed": 0}, "epoch": 3}
    audio, image = _inputs(small.config, 2)
    with torch.no_grad():
        for x, y in zip(small.eval()(audio, image), loaded(audio, image)):
            assert torch.equal(x, y)
    assert build_audioclip("small", str(path)).config == small.config
    with pytest.raises(CheckpointError, match="stored config differs"):
        build_audioclip("paper", str(path))


def test_official_layout_loads_and_ignores_text(small: AudioCLIP, tmp_path: Path) -> None:
    path = tmp_path / "AudioCLIP-Full-Training.pt"
    state = _official_layout(small)
    del state["audio.window"]  # a deterministic buffer: recomputed when absent
    torch.save(state, path)
    model = AudioCLIP.from_checkpoint(path, config=profile_config("small"))
    assert set(TEXT_KEYS) | {"audio.fbsp.bias"} <= set(model.load_report["ignored"])
    assert model.load_report["computed"] == ["audio.window"]
    assert torch.equal(model.audio.fbsp.fc, small.audio.fbsp.fc)


def test_missing_unexpected_and_mismatched_keys_raise(small: AudioCLIP, tmp_path: Path) -> None:
    cfg = profile_config("small")
    state = _official_layout(small)
    del state["visual.layer2.0.downsample.0.weight"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt.*missing key.*visual\.layer2\.0\.downsample\.0\.weight"):
        AudioCLIP.from_checkpoint(tmp_path / "missing.pt", config=cfg)
    state = _official_layout(small)
    state["audio.layer9.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected key.*audio\.layer9\.weight"):
        AudioCLIP.from_checkpoint(tmp_path / "extra.pt", config=cfg)
    torch.save(_official_layout(small), tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatch.*visual\.conv1\.weight"):
        AudioCLIP.from_checkpoint(tmp_path / "small.pt")  # default config = paper sizes


def test_clip_plus_esrnxfbsp_pair(small: AudioCLIP, tmp_path: Path) -> None:
    full = _official_layout(small)
    clip = {k: v for k, v in full.items() if not k.startswith("audio.") and k != "logit_scale_ai"}
    esr = {k.removeprefix("audio."): v for k, v in full.items() if k.startswith("audio.")}
    esr["fc.weight"], esr["fc.bias"] = torch.randn(527, 512), torch.randn(527)  # AudioSet head
    torch.save(clip, tmp_path / "CLIP.pt")
    torch.save(esr, tmp_path / "ESRNXFBSP.pt")
    with pytest.warns(UserWarning, match="fresh initialization"):
        model = build_audioclip("small", tmp_path / "ESRNXFBSP.pt", tmp_path / "CLIP.pt")  # any order
    assert model.load_report["fresh"] == ["logit_scale_ai", "audio.fc.weight", "audio.fc.bias"]
    assert torch.equal(model.visual.attnpool.q_proj.weight, small.visual.attnpool.q_proj.weight)
    assert torch.equal(model.audio.att3.conv_point.weight, small.audio.att3.conv_point.weight)
    assert model.logit_scale_ai.item() == pytest.approx(math.log(100.0))
    del esr["layer1.0.conv2.weight"]
    torch.save(esr, tmp_path / "ESRNXFBSP.pt")
    with pytest.raises(CheckpointError, match=r"audio\.layer1\.0\.conv2\.weight"), pytest.warns(UserWarning):
        build_audioclip("small", tmp_path / "CLIP.pt", tmp_path / "ESRNXFBSP.pt")


def test_preprocess_and_normalize_frames() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(90, 160, 3), dtype=np.uint8)
    x = preprocess_image(img, size=64)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    frames = torch.from_numpy(rng.integers(0, 256, size=(2, 10, 4, 64, 64, 3), dtype=np.uint8))
    y = normalize_frames(frames)
    assert y.shape == (2, 10, 4, 3, 64, 64)
    expect = (frames[0, 0, 0, 5, 7, 1].item() / 255.0 - 0.4578275) / 0.26130258
    assert y[0, 0, 0, 1, 5, 7].item() == pytest.approx(expect, rel=1e-5)
    # a uniform grey image survives resize/crop unchanged
    grey = preprocess_image(np.full((50, 70, 3), 128, np.uint8), size=32)
    assert torch.allclose(grey, normalize_frames(torch.full((32, 32, 3), 128, dtype=torch.uint8)))
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(img.astype(np.float32))


def test_params_section_parses() -> None:
    p = section(load_params(ROOT / "params.yaml"), "audioclip", AudioCLIPParams)
    assert p.profile in ("small", "paper")
    assert profile_config(p.profile).name == p.profile
