"""AVE-CLIP localizer: window splitting, shapes for every variant, prediction rule, loss."""

from __future__ import annotations

import pytest
import torch

import torch.nn.functional as F

from avelib.models.localizer import (
    AVECLIPLocalizer,
    Dropout,
    FeatureAttention,
    LocalizerConfig,
    LocalizerOutput,
    WindowBlock,
    window_sizes,
)

B, DA, DV = 3, 12, 20


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, 10, DA, generator=g), torch.randn(B, 10, DV, generator=g)


@pytest.mark.parametrize(
    "w,sizes",
    [(10, [10]), (5, [5, 5]), (3, [3, 3, 4]), (2, [2] * 5), (4, [4, 6]), (7, [10]), (1, [1] * 10), (12, [10])],
)
def test_window_sizes_remainder_joins_last(w, sizes):
    assert window_sizes(10, w) == sizes
    assert sum(window_sizes(10, w)) == 10


def test_window_sizes_rejects_zero():
    with pytest.raises(ValueError):
        window_sizes(10, 0)


@pytest.mark.parametrize("attention", ["temporal", "feature", "both"])
@pytest.mark.parametrize("fusion", ["concat", "sum"])
@pytest.mark.parametrize("refine", [True, False])
def test_forward_shapes_all_variants(attention, fusion, refine):
    cfg = LocalizerConfig(hidden=16, heads=2, attention=attention, fusion=fusion, refine=refine, dropout=0.0)
    model = AVECLIPLocalizer(cfg, DA, DV)
    out = model(*_inputs())
    assert out.alpha.shape == (B, 10) and out.class_logits.shape == (B, 28)
    assert torch.all((out.alpha > 0) & (out.alpha < 1))
    assert out.attention is None
    loss = model.loss(out, torch.randint(0, 29, (B, 10)))
    loss.backward()  # every used parameter gets a gradient
    assert all(p.grad is not None for n, p in model.named_parameters() if "final" not in n or refine)


@pytest.mark.parametrize("windows", [(10,), (5,), (3,), (4,), (10, 5, 3, 2), (3, 7), (1, 2)])
def test_window_sets_and_attention_maps(windows):
    cfg = LocalizerConfig(hidden=16, heads=2, windows=windows, attention="both")
    out = AVECLIPLocalizer(cfg, DA, DV).eval()(*_inputs(), return_attention=True)
    for w in windows:
        maps = out.attention[str(w)]
        t = maps["temporal"]
        assert t.shape == (B, 2, 10, 10)  # block-diagonal over the windows
        # each query row sums to 1 inside its window, 0 outside
        torch.testing.assert_close(t.sum(-1), torch.ones(B, 2, 10))
        start = 0
        for size in window_sizes(10, w):
            block = t[..., start : start + size, start : start + size]
            torch.testing.assert_close(block.sum(-1), torch.ones(B, 2, size))
            start += size
        assert maps["feature"].shape == (B, len(window_sizes(10, w)), 2, 8, 8)  # c = hidden/heads
    assert out.attention["final"]["temporal"].shape == (B, 2, 10, 10)


def test_remainder_window_is_isolated():
    """With w=3, changing second 9 (in the last window 6..9) leaves seconds 0..5 of that branch unchanged."""
    cfg = LocalizerConfig(hidden=16, heads=2, windows=(3,), positional=False, dropout=0.0)
    model = AVECLIPLocalizer(cfg, DA, DV).eval()
    a, v = _inputs()
    x = model._inputs(a, v)
    y1, _ = model.multi.blocks["3"](x)
    x2 = x.clone()
    x2[:, 9] += 1.0
    y2, _ = model.multi.blocks["3"](x2)
    torch.testing.assert_close(y1[:, :6], y2[:, :6])
    assert not torch.allclose(y1[:, 6:], y2[:, 6:])


@pytest.mark.parametrize("modality", ["audio", "visual", "both"])
def test_modality_variants_drop_the_other_input(modality):
    cfg = LocalizerConfig(hidden=16, heads=2, modality=modality)
    model = AVECLIPLocalizer(cfg, DA if modality != "visual" else None, DV if modality != "audio" else None)
    a, v = _inputs()
    out = model(a if modality != "visual" else None, v if modality != "audio" else None)
    assert out.alpha.shape == (B, 10)
    with pytest.raises(ValueError):
        model(None, None)


def test_region_axis_visual_is_averaged():
    model = AVECLIPLocalizer(LocalizerConfig(hidden=16, heads=2), DA, DV).eval()
    a, v = _inputs()
    regions = v.unsqueeze(2).expand(B, 10, 5, DV)  # [B,10,R,Dv], identical regions
    torch.testing.assert_close(model(a, regions).alpha, model(a, v).alpha)


def test_set_windows_restricts_branches():
    model = AVECLIPLocalizer(LocalizerConfig(hidden=16, heads=2), DA, DV).eval()
    model.set_windows((10,))
    out = model(*_inputs(), return_attention=True)
    assert set(out.attention) == {"10", "final"}
    with pytest.raises(ValueError):
        model.set_windows((6,))


def test_prediction_rule_and_scores():
    alpha = torch.tensor([[0.9, 0.2, 0.51, 0.5, 0.7, 0.1, 0.6, 0.6, 0.4, 0.99]])
    logits = torch.zeros(1, 28)
    logits[0, 7] = 3.0
    out = LocalizerOutput(alpha=alpha, alpha_logits=torch.logit(alpha), class_logits=logits)
    pred = AVECLIPLocalizer.predict(out)
    assert pred.tolist() == [[7, 28, 7, 28, 7, 28, 7, 7, 28, 7]]
    assert AVECLIPLocalizer.segment_scores(out).argmax(-1).tolist() == pred.tolist()


def test_loss_ignores_class_of_all_background_videos():
    out = LocalizerOutput(alpha=torch.full((2, 10), 0.5), alpha_logits=torch.zeros(2, 10),
                          class_logits=torch.zeros(2, 28, requires_grad=True))
    labels = torch.full((2, 10), 28)
    bce_only = AVECLIPLocalizer.loss(out, labels)
    assert torch.isfinite(bce_only)
    torch.testing.assert_close(bce_only, torch.tensor(0.6931), atol=1e-4, rtol=0)
    labels[0, 3:6] = 4
    both = AVECLIPLocalizer.loss(out, labels, {"bce": 0.0, "ce": 1.0})
    torch.testing.assert_close(both, torch.log(torch.tensor(28.0)))


def test_hidden_must_divide_heads():
    with pytest.raises(ValueError, match="divisible"):
        AVECLIPLocalizer(LocalizerConfig(hidden=10, heads=4), DA, DV)


def test_timeline_and_attention_plots_return_figures():
    from matplotlib.figure import Figure

    from avelib.viz.localizer import attention_maps, timelines

    model = AVECLIPLocalizer(LocalizerConfig(hidden=16, heads=2), DA, DV).eval()
    out = model(*_inputs(), return_attention=True)
    fig = attention_maps(out.attention, video=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 5  # 4 window sizes + final, 2 domains
    assert isinstance(attention_maps(out.attention, head=0), Figure)
    labels = torch.full((2, 10), 28)
    labels[0, 2:7] = 3
    pred = AVECLIPLocalizer.predict(out)[:2]
    assert isinstance(timelines(labels.numpy(), pred.numpy(), out.alpha[:2].detach().numpy()), Figure)
    assert isinstance(timelines(labels[0].numpy(), pred[0].numpy()), Figure)


def test_feature_attention_equals_its_definition():
    """The fast formulation (norms as square-sum-sqrt, temperature on q) gives the textbook maths."""
    torch.manual_seed(0)
    fa = FeatureAttention(32, 4, dropout=0.0).eval()
    with torch.no_grad():
        fa.temperature.uniform_(0.5, 2.0)
    x = torch.randn(6, 5, 32)  # [M,w,D]
    q, k, v = fa.qkv(x).reshape(6, 5, 3, 4, 8).permute(2, 0, 3, 4, 1)  # [M,h,c,w] each
    attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * fa.temperature).softmax(-1)
    want = fa.proj((attn @ v).permute(0, 3, 1, 2).reshape(6, 5, 32))  # [M,w,D]
    out, got_attn = fa(x)
    torch.testing.assert_close(got_attn, attn)
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize("w", [2, 3, 4, 5, 10])
def test_window_block_equals_one_window_at_a_time(w):
    """Full windows run as one batch, the remainder window alone: the same as each window on its own."""
    torch.manual_seed(0)
    block = WindowBlock(LocalizerConfig(hidden=32, heads=4), w).eval()
    x = torch.randn(3, 10, 32)  # [B,T,D]
    got, _ = block(x)
    start, parts = 0, []
    for size in window_sizes(10, w):
        parts.append(block._layer(x[:, start : start + size])[0])
        start += size
    torch.testing.assert_close(got, torch.cat(parts, dim=1))


def test_dropout_keeps_one_minus_p_scaled_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = Dropout(0.25)
    y = drop(torch.ones(200_000))
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    x = torch.randn(4, 5)
    assert drop.eval()(x) is x
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)
