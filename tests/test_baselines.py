"""Baselines: AVEL audio-guided attention + LSTMs, per-second MLP; common interface."""

from __future__ import annotations

import pytest
import torch

from avelib.models.baselines import AVELAttention, BaselineConfig, SegmentMLP, segment_predictions
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig

CFG = BaselineConfig(hidden=16, lstm_hidden=8)


@pytest.mark.parametrize("regions", [None, 1, 49])
def test_avel_shapes_and_attention(regions):
    model = AVELAttention(CFG, 128, 64)
    a = torch.randn(2, 10, 128)
    v = torch.randn(2, 10, 64) if regions is None else torch.randn(2, 10, regions, 64)
    out = model(a, v)
    r = 1 if regions is None else regions
    assert out.logits.shape == (2, 10, 29) and out.attention.shape == (2, 10, r)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2, 10))
    loss = model.loss(out, torch.randint(0, 29, (2, 10)))
    loss.backward()
    assert model.lstm_v.weight_ih_l0.grad is not None


def test_avel_attention_follows_audio():
    """The attended visual vector changes with the audio when there are several regions."""
    torch.manual_seed(0)
    model = AVELAttention(CFG, 8, 8).eval()
    v = torch.randn(1, 10, 4, 8)
    o1, o2 = model(torch.randn(1, 10, 8), v), model(torch.randn(1, 10, 8), v)
    assert not torch.allclose(o1.attention, o2.attention)


@pytest.mark.parametrize("modality", ["audio", "visual", "both"])
def test_mlp_modalities(modality):
    model = SegmentMLP(BaselineConfig(hidden=16, modality=modality), 12, 20)
    out = model(torch.randn(3, 10, 12), torch.randn(3, 10, 20))
    assert out.logits.shape == (3, 10, 29)
    assert segment_predictions(model, out).shape == (3, 10)


def test_mlp_is_per_second():
    """No temporal context: changing second 3 changes only the prediction scores of second 3."""
    model = SegmentMLP(CFG, 4, 4).eval()
    a, v = torch.randn(1, 10, 4), torch.randn(1, 10, 4)
    s1 = model.segment_scores(model(a, v))
    a2 = a.clone()
    a2[0, 3] += 5
    s2 = model.segment_scores(model(a2, v))
    changed = (s1 - s2).abs().sum(-1)[0] > 0
    assert changed.tolist() == [t == 3 for t in range(10)]


def test_common_interface_all_models():
    a, v, y = torch.randn(2, 10, 6), torch.randn(2, 10, 6), torch.randint(0, 29, (2, 10))
    for model in (AVELAttention(CFG, 6, 6), SegmentMLP(CFG, 6, 6),
                  AVECLIPLocalizer(LocalizerConfig(hidden=8, heads=2), 6, 6)):
        out = model(a, v)
        scores = model.segment_scores(out)
        assert scores.shape == (2, 10, 29)
        pred = segment_predictions(model, out)
        assert pred.dtype == torch.int64 and pred.shape == (2, 10)
        assert torch.equal(pred, scores.argmax(-1))
        assert model.loss(out, y, {"bce": 1.0, "ce": 1.0}).dim() == 0
