"""The pretrain stage: class-name (label) terms in the tower training, and the separate SynthAVE pool."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from avelib.data.ave import load_dataset
from avelib.data.cache import DecodeConfig, SegmentCache
from avelib.data.synth import SynthConfig
from avelib.io import read_json
from avelib.models.audioclip import build_audioclip
from avelib.models.label_tower import LabelTower
from avelib.train.contrastive import FinetuneConfig, finetune
from avelib.stages.pretrain import run_pretrain
from avelib.train.pretrain import PretrainConfig, pool_config, prepare_pool
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


def test_pool_must_not_repeat_the_dataset():
    synth = SynthConfig(seed=3)
    pool = pool_config(synth, PretrainConfig(pool_videos=7, pool_seed=4, pool_split_fractions=(0.5, 0.5, 0.0)))
    assert pool == dataclasses.replace(synth, num_videos=7, seed=4, split_fractions=(0.5, 0.5, 0.0))
    with pytest.raises(ValueError, match="pool_seed"):
        pool_config(synth, PretrainConfig(pool_seed=3))


SYNTH = SynthConfig(num_videos=6, image_size=32, fps=4, sample_rate=8000, workers=1, seed=5)
DECODE = DecodeConfig(frames_per_second=2, image_size=64, sample_rate=16000, workers=1)


def test_prepare_pool_reuses_a_finished_pool_and_redoes_another(tmp_path):
    root, cache = prepare_pool(SYNTH, DECODE, tmp_path, progress=False)
    assert len(load_dataset(root)) == 6 and len(SegmentCache.open(cache)) == 6
    stamp = (cache / "frames.npy").stat().st_mtime_ns
    prepare_pool(SYNTH, DECODE, tmp_path, progress=False)
    assert (cache / "frames.npy").stat().st_mtime_ns == stamp  # same settings: reused
    prepare_pool(dataclasses.replace(SYNTH, num_videos=5), DECODE, tmp_path, progress=False)
    assert len(SegmentCache.open(cache)) == 5
    assert read_json(tmp_path / "pool.json")["synth"]["num_videos"] == 5


def _params(**pretrain) -> dict:
    return {"synth": dataclasses.asdict(SYNTH), "decode": dataclasses.asdict(DECODE), "audioclip": {"profile": "small"},
            "pretrain": {"pool_videos": 20, "pool_seed": 6, "towers": dict(TOWERS, epochs=1), **pretrain}}


def test_run_pretrain_gives_a_checkpoint_and_can_be_switched_off(tmp_path):
    result = run_pretrain(_params(), tmp_path / "pool", tmp_path / "out", progress=False)
    assert result is not None and result.history[-1]["train_label"] > 0
    assert len(load_dataset(tmp_path / "pool" / "synthave")) == 20
    assert build_audioclip("small", str(tmp_path / "out" / "best.pt")).config.embed_dim == 128
    assert run_pretrain(_params(enabled=False), tmp_path / "pool", tmp_path / "off", progress=False) is None
    assert read_json(tmp_path / "off" / "skipped.json")["enabled"] is False
    assert not (tmp_path / "off" / "best.pt").exists()
