"""The pretrain stage: class-name (label) terms in the tower training, and the AudioSet-like pool."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from avelib.data.ave import CATEGORIES, NUM_SEGMENTS, load_dataset
from avelib.data.cache import DecodeConfig, SegmentCache
from avelib.data.pool import POOL_FILE, PoolConfig, build_pool, class_pairs, plan_clip, pool_labels
from avelib.data.synth import SynthConfig
from avelib.io import read_json
from avelib.models.audioclip import build_audioclip
from avelib.models.label_tower import LabelTower
from avelib.train.contrastive import FinetuneConfig, finetune
from avelib.stages.pretrain import run_pretrain
from tests.test_contrastive import make_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOWERS = {"epochs": 2, "batch_size": 4, "eval_batch_size": 8, "label_weight": 1.0, "lr": 1e-3, "seed": 0}


def test_label_tower_logits_and_loss():
    torch.manual_seed(0)
    tower = LabelTower(num_classes=5, embed_dim=8)
    names = tower.embeddings.detach()  # [5,8]
    logits = tower.logits(3 * names[[2, 4]])  # [2,5]: each row is a scaled copy of one class name
    assert logits.shape == (2, 5)
    assert logits.argmax(1).tolist() == [2, 4]  # cosine similarity ignores the scale
    right = tower.loss(names[[2, 4]], names[[2, 4]], torch.tensor([2, 4]))
    wrong = tower.loss(names[[2, 4]], names[[2, 4]], torch.tensor([0, 1]))
    assert right < wrong


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[SegmentCache, np.ndarray, dict[str, np.ndarray]]:
    root, cache_dir = make_dataset(tmp_path_factory.mktemp("ds"))
    ds = load_dataset(root)
    return SegmentCache.open(cache_dir), ds.labels, ds.splits


def _train(tiny, out: Path, stop_after_epoch: int | None = None, **changes):
    cache, labels, splits = tiny
    torch.manual_seed(0)
    model = build_audioclip("small", None)
    cfg = dataclasses.replace(FinetuneConfig(**{**TOWERS, "recall_ks": (1,)}), **changes)
    return finetune(model, cache, labels, splits, cfg, out, progress=False, stop_after_epoch=stop_after_epoch)


def test_label_terms_are_trained_logged_and_resumed(tiny, tmp_path):
    full = _train(tiny, tmp_path / "full")
    assert all(h["train_label"] > 0 for h in full.history[1:])
    assert "train_label" in (tmp_path / "full" / "plots" / "finetune_loss.csv").read_text().splitlines()[0]
    last = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert last["label_tower"]["embeddings"].shape == (28, 128)
    # best.pt holds the towers only: it loads as a plain AudioCLIP checkpoint
    build_audioclip("small", str(tmp_path / "full" / "best.pt"))
    _train(tiny, tmp_path / "resumed", stop_after_epoch=1)
    resumed = _train(tiny, tmp_path / "resumed")
    assert [h["train_label"] for h in resumed.history[1:]] == [h["train_label"] for h in full.history[1:]]


def test_label_weight_zero_is_stage_a_unchanged(tiny, tmp_path):
    run = _train(tiny, tmp_path / "plain", label_weight=0.0)
    assert all("train_label" not in h for h in run.history)
    assert torch.load(tmp_path / "plain" / "last.pt", weights_only=True)["label_tower"] is None
    with pytest.raises(ValueError, match="label_weight"):
        _train(tiny, tmp_path / "neg", label_weight=-1.0)


SYNTH = SynthConfig(num_videos=6, image_size=32, fps=4, sample_rate=8000, workers=1, seed=5)
DECODE = DecodeConfig(frames_per_second=2, image_size=64, sample_rate=16000, workers=1)
POOL = PoolConfig(videos=6, split_fractions=(0.5, 0.5, 0.0), seed=4, classes=30)


def test_pool_classes_hold_the_ave_classes_and_pairs_of_look_and_sound():
    pairs = class_pairs(PoolConfig(classes=112))
    n = len(CATEGORIES)
    assert pairs.shape == (112, 2) and (pairs[:n] == np.arange(n)[:, None]).all()  # AVE class c: look c, sound c
    assert (pairs[n:, 0] != pairs[n:, 1]).all() and len({tuple(p) for p in pairs}) == 112  # others: distinct mixes
    assert (class_pairs(PoolConfig(classes=112)) == pairs).all()  # drawn once by the seed
    with pytest.raises(ValueError, match="pool.classes"):
        class_pairs(PoolConfig(classes=27))


def test_pool_clips_have_independent_spans_and_other_conditions():
    cfg = PoolConfig(second_sound=1.0)
    plans = [plan_clip(cfg, i, 3, 9) for i in range(200)]
    seen = [[v >= 0 for v in p["visual"]] for p in plans]
    heard = [[a == 9 for a in p["audio"]] for p in plans]
    assert any(s != h for s, h in zip(seen, heard))  # visible and audible in different seconds
    assert all(set(p["visual"]) <= {3, -1} and len(p["played_member"]) == 2 for p in plans)  # a second sound each
    assert all(cfg.zoom[0] <= p["zoom"] <= cfg.zoom[1] for p in plans)
    assert len({round(p["visual_noise_scale"], 6) for p in plans}) > 100  # drawn per clip


def test_build_pool_writes_a_cache_with_clip_labels_and_reuses_it(tmp_path):
    out = build_pool(POOL, SYNTH, DECODE, tmp_path / "pool", progress=False)
    cache = SegmentCache.open(out)
    assert cache.frames.shape == (6, NUM_SEGMENTS, 2, 64, 64, 3) and cache.audio.shape == (6, NUM_SEGMENTS, 16000)
    labels, splits = pool_labels(out)
    assert labels.shape == (6, NUM_SEGMENTS) and (labels == labels[:, :1]).all()  # one class per clip
    assert sorted(np.concatenate(list(splits.values()))) == list(range(6))
    stamp = (out / "frames.npy").stat().st_mtime_ns
    build_pool(POOL, dataclasses.replace(SYNTH, workers=2), DECODE, out, progress=False)
    assert (out / "frames.npy").stat().st_mtime_ns == stamp  # same settings (workers aside): reused
    build_pool(dataclasses.replace(POOL, videos=5), SYNTH, DECODE, out, progress=False)
    assert len(SegmentCache.open(out)) == 5 and read_json(out / POOL_FILE)["record"]["pool"]["videos"] == 5
    with pytest.raises(ValueError, match="pool.seed"):
        build_pool(dataclasses.replace(POOL, seed=5), SYNTH, DECODE, tmp_path / "same", progress=False)
    with pytest.raises(ValueError, match="zoom"):
        build_pool(dataclasses.replace(POOL, zoom=(0.5, 1.0)), SYNTH, DECODE, tmp_path / "zoom", progress=False)


def _params(**pretrain) -> dict:
    return {"synth": dataclasses.asdict(SYNTH), "decode": dataclasses.asdict(DECODE), "audioclip": {"profile": "small"},
            "pretrain": {"pool": {"videos": 20, "seed": 6, "classes": 30}, "towers": dict(TOWERS, epochs=1, pairs="clip"),
                         **pretrain}}


def test_run_pretrain_gives_a_checkpoint_and_can_be_switched_off(tmp_path):
    result = run_pretrain(_params(), tmp_path / "pool", tmp_path / "out", progress=False)
    assert result is not None and result.history[-1]["train_label"] > 0
    assert len(SegmentCache.open(tmp_path / "pool")) == 20
    assert result.history[-1]["val_pairs"] == 2 * NUM_SEGMENTS * 2  # clip pairs: every second of the 2 val clips
    assert build_audioclip("small", str(tmp_path / "out" / "best.pt")).config.embed_dim == 128
    assert run_pretrain(_params(enabled=False), tmp_path / "pool", tmp_path / "off", progress=False) is None
    assert read_json(tmp_path / "off" / "skipped.json")["enabled"] is False
    assert not (tmp_path / "off" / "best.pt").exists()
