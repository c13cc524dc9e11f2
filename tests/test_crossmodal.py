"""Cross-modality localization: the A2V / V2A scorer on hand-made similarity matrices, its exact chance,
and the runs on our features and on the classic VGG19/VGGish layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avelib.data.ave import BACKGROUND
from avelib.data.features import load_classic_features, load_classic_splits, synthetic_features
from avelib.eval import crossmodal as X
from avelib.eval.tasks import crossmodal_summary
from avelib.train.distance import CrossmodalConfig, crossmodal_runs


def _labels(start: int, length: int, cls: int = 3) -> np.ndarray:
    row = np.full(10, BACKGROUND)
    row[start : start + length] = cls
    return row


def _diagonal_at(start: int, length: int, offset: int) -> np.ndarray:
    """Similarity 1 where query second start+k meets target second offset+k, else 0."""
    sim = np.zeros((10, 10))
    for k in range(length):
        sim[start + k, offset + k] = 1.0
    return sim


@pytest.mark.parametrize("length", range(1, 10))
def test_exact_start_is_found_for_every_length_and_start(length):
    for start in range(10 - length + 1):
        sim = _diagonal_at(start, length, start)[None]
        assert X.predicted_starts(sim, np.array([start]), np.array([length]))[0] == start


@pytest.mark.parametrize("length", range(1, 10))
def test_a_start_off_by_one_counts_as_wrong(length):
    for start, offset in itertools.product(range(10 - length + 1), repeat=2):
        sim = _diagonal_at(start, length, offset)[None]
        correct = X.both_directions(sim, np.array([start]), np.array([length]))["a2v"][0]
        assert correct == (offset == start)


def test_ties_go_to_the_earliest_offset():
    flat = np.zeros((2, 10, 10))  # every offset scores 0
    starts, lengths = np.array([0, 4]), np.array([3, 3])
    assert X.predicted_starts(flat, starts, lengths).tolist() == [0, 0]
    assert X.both_directions(flat, starts, lengths)["a2v"].tolist() == [True, False]
    two = _diagonal_at(2, 2, 5) + _diagonal_at(2, 2, 1)  # offsets 1 and 5 tie at 2
    assert X.predicted_starts(two[None], np.array([2]), np.array([2]))[0] == 1


def test_v2a_reads_the_transpose():
    # audio seconds 2..3 match visual seconds 2..3; visual 2..3 is most like audio 6..7
    sim = _diagonal_at(2, 2, 2) + 2 * _diagonal_at(6, 2, 2)  # [audio, visual]
    out = X.both_directions(sim[None], np.array([2]), np.array([2]))
    assert out["a2v"][0] and not out["v2a"][0]


def test_event_spans_and_eligibility():
    labels = np.stack([_labels(0, 10), _labels(3, 4), _labels(0, 0), _labels(9, 1)])
    starts, lengths = X.event_spans(labels)
    assert starts.tolist() == [0, 3, 0, 9] and lengths.tolist() == [10, 4, 0, 1]
    assert X.eligible(lengths).tolist() == [False, True, False, True]
    gap = _labels(1, 2)
    gap[5] = 3
    with pytest.raises(ValueError, match="not contiguous"):
        X.event_spans(gap[None])
    with pytest.raises(ValueError, match="outside"):
        X.predicted_starts(np.zeros((1, 10, 10)), np.array([0]), np.array([10]))


def test_chance_is_exact_by_enumeration():
    for length in range(1, 10):
        offsets = range(10 - length + 1)
        hits = [start == guess for start in offsets for guess in offsets]  # every true start x every guess
        assert X.chance_per_video(np.array([length]))[0] == pytest.approx(np.mean(hits))
    assert X.chance_summary(np.array([1, 9]))["accuracy"] == pytest.approx((1 / 10 + 1 / 2) / 2)


def test_cosine_matches_torch():
    rng = np.random.default_rng(0)
    a, v = rng.normal(size=(2, 10, 6)), rng.normal(size=(2, 10, 6))
    ref = F.cosine_similarity(torch.tensor(a)[:, :, None], torch.tensor(v)[:, None], dim=-1).numpy()
    np.testing.assert_allclose(X.cosine_similarity(a, v), ref, atol=1e-12)


def test_runs_beat_chance_on_learnable_features_and_summary_compares():
    audio, _, labels, splits = synthetic_features(n=160, audio_dim=16, visual_dim=16, seed=1)
    visual = audio + 0.1 * np.random.default_rng(0).normal(size=audio.shape).astype(np.float32)  # one shared space
    cfg = CrossmodalConfig(epochs=3, batch_size=128)
    res = crossmodal_runs(audio, visual, labels, splits, cfg, seeds=(0, 1), progress=False)
    assert res["videos"] == len(res["lengths"]) > 0 and all(0 < n < 10 for n in res["lengths"])
    for d in ("a2v", "v2a"):
        assert len(res["learned"][d]["correct"]) == 2 and len(res["zero_shot"][d]["correct"]) == 1
        lo, hi = res["learned"][d]["ci"]
        assert 0 <= lo <= res["learned"][d]["accuracy"]["mean"] <= hi <= 1
    assert res["zero_shot"]["a2v"]["accuracy"]["mean"] > 0.9 > res["chance"]["accuracy"]  # each second finds itself
    again = crossmodal_runs(audio, visual, labels, splits, cfg, seeds=(0, 1), progress=False)
    assert again["learned"] == res["learned"]  # same seeds, same numbers
    summary = crossmodal_summary({"finetuned": res, "frozen": again}, "toy", [0, 1])
    pairs = {(c["a"], c["b"]) for c in summary["comparisons"]}
    assert ("A2V zero_shot (finetuned)", "chance") in pairs
    assert ("V2A zero_shot (finetuned)", "V2A zero_shot (frozen)") in pairs
    same = next(c for c in summary["comparisons"] if (c["a"], c["b"]) == ("A2V zero_shot (finetuned)", "A2V zero_shot (frozen)"))
    assert same["difference"] == 0 and same["verdict"] == "one tower run: not resolvable"  # never resolved from one run


def test_classic_vgg_route_feeds_the_learned_distance(tmp_path):
    from tests.test_features import _write_classic

    _write_classic(tmp_path, n=5)
    feats = load_classic_features(tmp_path)
    splits = load_classic_splits(tmp_path)
    labels = np.stack([_labels(s, n) for s, n in [(0, 3), (2, 5), (1, 1), (4, 2), (3, 6)]])
    res = crossmodal_runs(feats.audio, feats.visual, labels, splits, CrossmodalConfig(epochs=1), seeds=(0,),
                          progress=False)
    assert res["zero_shot"] is None  # VGGish 128 vs VGG19 512: no shared space
    assert res["videos"] == 1 and res["example"]["method"] == "learned"


def test_a_split_without_short_events_is_reported_not_scored(capsys):
    audio, visual, labels, splits = synthetic_features(n=40, audio_dim=8, visual_dim=8, seed=0)
    labels = labels.copy()
    labels[splits["test"]] = 5  # every test video is one 10-s event
    labels[splits["val"]] = 5
    res = crossmodal_runs(audio, visual, labels, splits, CrossmodalConfig(epochs=1), seeds=(0,), progress=False)
    assert res["videos"] == 0 and res["chance"] is None and res["learned"] is None and res["zero_shot"] is None
    assert "nothing to score" in capsys.readouterr().out
    assert crossmodal_summary({"finetuned": res}, "toy", [0])["comparisons"] == []
    audio2, visual2, labels2, splits2 = synthetic_features(n=40, audio_dim=8, visual_dim=8, seed=0)
    labels2 = labels2.copy()
    labels2[splits2["val"]] = 5  # scored on test, but no validation video to choose the epoch with
    res2 = crossmodal_runs(audio2, visual2, labels2, splits2, CrossmodalConfig(epochs=2), seeds=(0,), progress=False)
    assert res2["videos"] > 0 and "the last epoch is kept" in capsys.readouterr().out
