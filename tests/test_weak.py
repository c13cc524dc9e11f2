"""Weak supervision: pooling, the multi-label soft-margin loss, the threshold rule and its selection on
tiny tensors; seed runs that see video-level labels only, resume per seed, and take the VGG route."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avelib.data.ave import BACKGROUND, NUM_CLASSES
from avelib.data.features import load_classic_features, load_classic_splits, read_video_labels, synthetic_features
from avelib.eval.tasks import weak_summary
from avelib.models.baselines import BaselineConfig
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig
from avelib.train import weak as W
from avelib.train.localizer import AVELRecipe, BaselinesConfig, EvalConfig, PhaseConfig, TrainConfig

TRAIN = TrainConfig(phases=(PhaseConfig((10,), 1), PhaseConfig((10, 5), 2)), threads=1)


def _video_labels(labels: np.ndarray) -> np.ndarray:
    """mil_labels-style [N,29] from segment labels (the event's class; background for a video without one)."""
    out = np.zeros((len(labels), NUM_CLASSES), dtype=np.float32)
    for i, row in enumerate(labels):
        ev = row[row != BACKGROUND]
        out[i, ev[0] if len(ev) else BACKGROUND] = 1.0
    return out


def test_pooling_by_hand():
    logits = torch.tensor([[[0.0, 2.0], [1.0, -1.0]]])  # [B=1,T=2,C=2]
    assert W.pool_time(logits, "max").tolist() == [[1.0, 2.0]]
    w0 = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    w1 = torch.softmax(torch.tensor([2.0, -1.0]), 0)
    expected = [float(w0 @ torch.tensor([0.0, 1.0])), float(w1 @ torch.tensor([2.0, -1.0]))]
    np.testing.assert_allclose(W.pool_time(logits, "attention")[0].numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown pool"):
        W.pool_time(logits, "mean")


def test_multilabel_soft_margin_by_hand():
    x = torch.tensor([[2.0, -1.0, 0.5]])
    y = torch.tensor([[1.0, 0.0, 1.0]])
    by_hand = -(y * torch.log(torch.sigmoid(x)) + (1 - y) * torch.log(torch.sigmoid(-x))).mean()
    assert float(W.weak_loss(x, y)) == pytest.approx(float(by_hand), rel=1e-6)


def test_targets_take_the_event_columns_of_mil_labels(shared_dir):
    mil = read_video_labels(shared_dir / "data" / "ave" / "mil_labels.h5")
    assert mil.shape == (4143, NUM_CLASSES)
    targets = W.weak_targets(mil)
    assert targets.shape == (4143, 28) and torch.equal(targets.sum(1), torch.ones(4143))
    with pytest.raises(ValueError, match="mil_labels"):
        W.weak_targets(np.zeros((3, 28)))


def test_localize_uses_the_video_class_and_a_strict_threshold():
    second = np.full((1, 10, 28), -5.0)
    second[0, 2:5, 7] = [0.0, 3.0, -0.1]  # sigmoid: 0.5, 0.95, 0.475
    video = np.zeros((1, 28))
    video[0, 7] = 1.0
    pred = W.localize(second, video, 0.5)
    assert pred[0].tolist() == [BACKGROUND] * 3 + [7] + [BACKGROUND] * 6  # 0.5 itself is not above 0.5
    assert W.localize(second, video, 0.4)[0, 2:5].tolist() == [7, 7, 7]


def test_threshold_selection_and_ties():
    second = np.full((1, 10, 28), -5.0)
    second[0, :4, 1] = [2.0, 2.0, 0.0, 0.0]  # p = 0.88, 0.88, 0.5, 0.5
    video = np.eye(28)[[1]]
    labels = np.array([[1, 1] + [BACKGROUND] * 8])
    best, scores = W.choose_threshold(second, video, labels, (0.7, 0.3, 0.6, 0.9))
    assert best == 0.6 and scores[0.6] == scores[0.7] == 1.0 and scores[0.3] == 0.8 and scores[0.9] == 0.8
    with pytest.raises(ValueError, match="empty"):
        W.choose_threshold(second, video, labels, ())


def test_training_reads_video_labels_only(monkeypatch):
    audio, visual, labels, splits = synthetic_features(n=60, audio_dim=8, visual_dim=8, seed=0)
    video = _video_labels(labels)
    model = AVECLIPLocalizer(LocalizerConfig(hidden=16, heads=2), 8, 8)
    res = W.train_weak(model, (audio, visual), video, splits, TRAIN, "max", seed=0, progress=False)
    assert len(res.history) == 3 and res.best_val_loss == min(h["val_loss"] for h in res.history)
    assert res.best_epoch == int(np.argmin([h["val_loss"] for h in res.history]))
    with pytest.raises(ValueError, match="do not match"):
        W.train_weak(model, (audio, visual), video[:5], splits, TRAIN, "max", seed=0, progress=False)


def test_seed_runs_are_deterministic_resume_and_summarize(tmp_path, monkeypatch):
    audio, visual, labels, splits = synthetic_features(n=60, audio_dim=8, visual_dim=8, seed=0)
    video = _video_labels(labels)
    ev = EvalConfig(seeds=(0, 1))
    cfg = W.WeakConfig(thresholds=(0.3, 0.5, 0.7))
    loc = LocalizerConfig(hidden=16, heads=2)
    run = W.train_weak_seeds((audio, visual), video, labels, splits, "aveclip", loc, TRAIN, ev, cfg, tmp_path / "w", False)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["seed0.json", "seed1.json"]
    assert all(t in (0.3, 0.5, 0.7) for t in run["chosen_threshold"])
    assert np.asarray(run["test_correct_seconds"]).shape == (2, len(splits["test"]))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished seed was trained again")

    monkeypatch.setattr(W, "train_weak", no_training)
    again = W.train_weak_seeds((audio, visual), video, labels, splits, "aveclip", loc, TRAIN, ev, cfg, tmp_path / "w", False)
    assert again == run
    monkeypatch.undo()
    fresh = W.train_weak_seeds((audio, visual), video, labels, splits, "aveclip", loc, TRAIN, ev, cfg, None, False)
    assert fresh["test_accuracy"] == run["test_accuracy"]  # same seeds, same numbers
    mlp = W.train_weak_seeds((audio, visual), video, labels, splits, "mlp", BaselineConfig(),
                          BaselinesConfig().train_config(TRAIN, "mlp"), ev, cfg, None, False)
    summary = weak_summary({("aveclip", "finetuned"): run, ("mlp", "finetuned"): mlp}, run, "toy", "p")
    assert [c["b"] for c in summary["comparisons"]] == ["AVE-CLIP, weak (fine-tuned towers)",
                                                        "per-second MLP, weak (fine-tuned towers)"]
    assert summary["comparisons"][0]["difference"] == 0  # the run against itself
    events = (labels[splits["test"]] != 28).sum(axis=1)  # [Nte]
    for seed in (0, 1):  # AVEL's argmax rule never predicts background
        record = json.loads((tmp_path / "w" / f"seed{seed}.json").read_text())
        assert (np.asarray(record["test_correct_seconds_argmax"]) <= events).all()
    assert summary["runs"][0]["test_accuracy_argmax"] == run["test_accuracy_argmax"]
    assert len(summary["example"]["labels"]) == 4


def test_classic_vgg_route_trains_avel_weakly(tmp_path):
    from tests.test_features import _write_classic

    _write_classic(tmp_path, n=5)
    feats = load_classic_features(tmp_path)
    splits = load_classic_splits(tmp_path)
    run = W.train_weak_seeds((feats.audio, feats.visual), _video_labels(feats.labels), feats.labels, splits, "avel",
                          BaselineConfig(), BaselinesConfig(avel=AVELRecipe(weak_epochs=2)).train_config(TRAIN, "avel", True),
                          EvalConfig(seeds=(0,)),
                          W.WeakConfig(), None, False)
    assert 0.0 <= run["test_accuracy"]["mean"] <= 1.0 and len(run["test_correct_seconds"][0]) == 1
