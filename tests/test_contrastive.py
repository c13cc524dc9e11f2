"""Stage A (contrastive fine-tuning) on a tiny synthetic segment cache with the real small towers."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from avelib.data.ave import BACKGROUND, CATEGORIES, HEADER, load_dataset
from avelib.data.cache import SegmentCache
from avelib.models.audioclip import AudioCLIP, build_audioclip
from avelib.eval.retrieval import retrieval_recall
from avelib.stages.towers import run_finetune
from avelib.train.contrastive import FinetuneConfig, finetune
from avelib.train.pairs import embed_pairs, event_videos, sample_epoch_batches, validation_pairs

K, S, R = 2, 64, 16000  # tiny cache: 2 frames per second at the small profile's input size and rate
SPLITS = {"train": range(0, 8), "val": range(8, 12), "test": range(12, 14)}
FAILED = 13  # a video the "decoder" could not read


def make_dataset(root: Path, n: int = 14, seed: int = 0) -> tuple[Path, Path]:
    """An AVE-layout root (Annotations + split files, no media) and its segment cache, built with numpy.

    Video v has class v % 4, an event in seconds [start, start+4); event seconds carry a class colour
    in the frames and a class tone in the audio, background seconds carry noise only.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cache = root / "cache"
    cache.mkdir()
    frames = np.lib.format.open_memmap(cache / "frames.npy", "w+", np.uint8, (n, 10, K, S, S, 3))
    audio = np.lib.format.open_memmap(cache / "audio.npy", "w+", np.float32, (n, 10, R))
    t = np.arange(R, dtype=np.float32) / R
    lines, ids = [], []
    for v in range(n):
        c, start = v % 4, int(rng.integers(0, 6))
        vid = f"vid{v:04d}xx"
        ids.append(vid)
        lines.append(f"{CATEGORIES[c]}&{vid}&good&{start}&{start + 4}")
        if v == FAILED:
            continue  # failed videos hold zeros
        frames[v] = rng.integers(0, 80, (10, K, S, S, 3), dtype=np.uint8)
        frames[v, start : start + 4, :, :, :, c % 3] += 120
        audio[v] = 0.05 * rng.standard_normal((10, R)).astype(np.float32)
        audio[v, start : start + 4] += 0.3 * np.sin(2 * np.pi * (200 + 300 * c) * t)
    frames.flush()
    audio.flush()
    ok = [v != FAILED for v in range(n)]
    meta = {
        "video_ids": ids, "ok": ok, "frames_per_second": K, "image_size": S, "sample_rate": R,
        "videos": [{} for _ in range(n)], "failures": [{"file": f"AVE/{ids[FAILED]}.mp4", "cause": "moov atom not found"}],
    }
    (cache / "meta.json").write_text(json.dumps(meta))
    (root / "Annotations.txt").write_text("\n".join([HEADER, *lines]) + "\n")
    for name, fname in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        (root / fname).write_text("".join(lines[i] + "\n" for i in SPLITS[name]))
    return root, cache


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, SegmentCache, np.ndarray, dict[str, np.ndarray]]:
    root, cache_dir = make_dataset(tmp_path_factory.mktemp("ds"))
    ds = load_dataset(root)
    return root, SegmentCache.open(cache_dir), ds.labels, ds.splits


CFG = FinetuneConfig(epochs=2, batch_size=4, lr=3e-4, warmup_fraction=0.25, device="cpu", eval_batch_size=8, seed=3)


def model0(seed: int = 3) -> AudioCLIP:
    torch.manual_seed(seed)
    return build_audioclip("small", None)


@pytest.fixture(scope="module")
def run_a(data, tmp_path_factory):
    _, cache, labels, splits = data
    out = tmp_path_factory.mktemp("ft_a")
    return finetune(model0(), cache, labels, splits, CFG, out, progress=False)


def test_batches_never_repeat_a_video_and_use_event_seconds(data):
    _, cache, labels, splits = data
    videos = event_videos(labels, splits["train"], cache.ok)
    batches = sample_epoch_batches(videos, labels, K, batch_size=3, passes=4, max_pairs=None,
                                   rng=np.random.default_rng(0))
    seen = np.concatenate([b[:, 0] for b in batches])
    for b in batches:  # [B,4] rows (video, audio second, frame second, frame)
        assert 2 <= len(b) <= 3
        assert len(set(b[:, 0].tolist())) == len(b), "two seconds of one video in a batch"
        assert (labels[b[:, 0], b[:, 1]] != BACKGROUND).all(), "a background second was sampled"
        assert (b[:, 1] == b[:, 2]).all(), "aligned pairs: the frame of the audio's own second"
        assert ((b[:, 3] >= 0) & (b[:, 3] < K)).all()
    # 8 videos per pass in batches of 3: 3+3+2 -> every video 4 times
    assert sorted(np.bincount(seen, minlength=8)[videos].tolist()) == [4] * len(videos)
    capped = sample_epoch_batches(videos, labels, K, 3, 4, max_pairs=8, rng=np.random.default_rng(0))
    assert [len(b) for b in capped] == [3, 3, 2]
    # a single leftover pair has no negative: dropped
    capped = sample_epoch_batches(videos, labels, K, 3, 4, max_pairs=7, rng=np.random.default_rng(0))
    assert [len(b) for b in capped] == [3, 3]


def test_validation_embeddings_encode_each_second_once_and_equal_one_pair_at_a_time(data, monkeypatch):
    _, cache, labels, splits = data
    pairs = validation_pairs(event_videos(labels, splits["val"], cache.ok), labels, cache.frames_per_second, 2)
    model = model0().eval()
    encoded = []
    encode_audio = model.encode_audio
    monkeypatch.setattr(model, "encode_audio", lambda x: encoded.append(len(x)) or encode_audio(x))
    a, i = embed_pairs(model, cache, pairs, batch_size=8, device=torch.device("cpu"))
    assert sum(encoded) == len(np.unique(pairs[:, :2], axis=0)) == len(pairs) // 2
    with torch.no_grad():
        for row in pairs[[0, 1, -1]]:
            (a1,), (i1,) = embed_pairs(model, cache, row[None], batch_size=1, device=torch.device("cpu"))
            k = int(np.flatnonzero((pairs == row).all(1))[0])
            torch.testing.assert_close(a[k], a1, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(i[k], i1, rtol=1e-4, atol=1e-5)


def test_failed_and_eventless_videos_are_excluded(data):
    _, cache, labels, splits = data
    lab = labels.copy()
    lab[9] = BACKGROUND  # no event second
    val = event_videos(lab, splits["val"], cache.ok)
    assert 9 not in val and len(val) == 3
    assert FAILED not in event_videos(lab, np.arange(len(lab)), cache.ok)
    pairs = validation_pairs(val, lab, K, frames=2)
    assert (lab[pairs[:, 0], pairs[:, 1]] != BACKGROUND).all() and sorted(set(pairs[:, 3])) == [0, 1]
    # every event second of every validation video, two frames each
    assert len(pairs) == 2 * int((lab[val] != BACKGROUND).sum())
    assert (validation_pairs(val, lab, K, frames=1)[:, 3] == K // 2).all()  # one frame: the middle one


def test_clip_pairs_draw_audio_and_frame_from_any_seconds(data):
    _, cache, labels, splits = data
    lab = labels.copy()
    lab[9] = BACKGROUND  # clip pairs ignore the seconds' labels: this video takes part too
    videos = event_videos(lab, np.arange(len(lab)), cache.ok, clip=True)
    assert 9 in videos and FAILED not in videos
    batches = sample_epoch_batches(videos, lab, K, 3, 20, None, np.random.default_rng(0), clip=True)
    rows = np.concatenate(batches)
    assert set(rows[:, 1]) == set(rows[:, 2]) == set(range(10))  # every second, for audio and frames
    assert (rows[:, 1] != rows[:, 2]).mean() > 0.5  # drawn independently
    pairs = validation_pairs(videos[:2], lab, K, 2, clip=True)
    assert len(pairs) == 2 * 10 * 2 and (pairs[:, 1] == pairs[:, 2]).all()


def test_retrieval_recall_counts_rank_of_true_pair():
    a = torch.eye(4)  # audio i matches image i exactly
    rec = retrieval_recall(a, torch.eye(4), (1, 2))
    assert rec["a2i_r1"] == rec["i2a_r1"] == 1.0 and rec["chance_r1"] == 0.25 and rec["chance_r2"] == 0.5
    # image 0 now has image 1's direction: audio 0 ties with all 4 images (rank 3), audio 1 ties
    # images 0 and 1 (rank 1): ties count against the query
    img = torch.eye(4)[[1, 1, 2, 3]]
    rec = retrieval_recall(torch.eye(4), img, (1, 2))
    assert rec["a2i_r1"] == 0.5 and rec["a2i_r2"] == 0.75
    collapsed = retrieval_recall(torch.ones(4, 3), torch.ones(4, 3), (1,))
    assert collapsed["a2i_r1"] == collapsed["i2a_r1"] == 0.0


def test_retrieval_recall_with_videos_counts_any_pair_of_the_own_video():
    # rows 0,1 are two seconds of video 7, rows 2,3 of video 9; audio 0 is closest to image 1
    a = torch.eye(4)[[1, 0, 2, 3]]
    rec = retrieval_recall(a, torch.eye(4), (1, 2), groups=np.array([7, 7, 9, 9]))
    assert rec["a2i_r1"] == 1.0 and rec["chance_r1"] == 0.5
    assert rec["chance_r2"] == 1 - (2 / 4) * (1 / 3)  # exact: P(neither of 2 own pairs in a random top 2)
    lo, hi = rec["a2i_r1_ci"]
    assert lo == hi == 1.0
    # audio of video 7 now points at video 9: half the queries miss, and the CI spans the miss
    a = torch.eye(4)[[2, 3, 2, 3]]
    rec = retrieval_recall(a, torch.eye(4), (1,), groups=np.array([7, 7, 9, 9]))
    assert rec["a2i_r1"] == 0.5 and rec["a2i_r1_ci"][0] <= 0.5 <= rec["a2i_r1_ci"][1]


def test_finetune_writes_outputs_and_keeps_best_epoch(run_a):
    out = run_a.out_dir
    for f in ("last.pt", "best.pt", "history.json", "plots/finetune_loss.csv", "plots/finetune_recall.csv"):
        assert (out / f).is_file(), f
    hist = json.loads((out / "history.json").read_text())
    entries = hist["epochs"]
    assert [h["epoch"] for h in entries] == [0, 1, 2] and hist["completed"] and run_a.completed
    assert all(np.isfinite(h["train_loss"]) for h in entries[1:])
    assert entries[1]["train_loss"] == pytest.approx(entries[1]["train_contrastive"] + entries[1]["train_fbsp"])
    # best = highest val a2i R@1 (ties: a2i R@5, then the earliest epoch)
    keys = [(h["a2i_r1"], h["a2i_r5"]) for h in entries]
    assert run_a.best_epoch == hist["best_epoch"] == entries[int(np.argmax([k == max(keys) for k in keys]))]["epoch"]
    # 4 validation videos x 4 event seconds x 2 frames = 32 pairs, 8 of the query's own video
    assert run_a.chance == pytest.approx({"chance_r1": 0.25, "chance_r5": 1 - np.prod([(24 - j) / (32 - j) for j in range(5)])})
    # best.pt loads through the towers' loader and holds the weights the result model carries
    best = AudioCLIP.from_checkpoint(out / "best.pt")
    assert best.load_report["extra"]["epoch"] == run_a.best_epoch
    for k, v in best.state_dict().items():
        assert torch.equal(v, run_a.model.state_dict()[k]), k
    with open(out / "plots/finetune_recall.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and float(rows[0]["chance_r1"]) == 0.25
    with open(out / "plots/finetune_loss.csv") as fh:
        assert next(csv.reader(fh))[0] == "epoch"


def test_finetune_changes_both_towers(run_a):
    start = model0().state_dict()
    end = torch.load(run_a.out_dir / "last.pt", weights_only=True)["model"]  # weights after the last epoch
    assert not torch.equal(start["visual.conv1.weight"], end["visual.conv1.weight"])
    assert not torch.equal(start["audio.fc.weight"], end["audio.fc.weight"])


def test_same_seed_gives_identical_history(data, run_a, tmp_path):
    _, cache, labels, splits = data
    # a loader worker process only moves the gathering off the main process: same numbers
    cfg = FinetuneConfig(**{**CFG.__dict__, "num_workers": 1})
    again = finetune(model0(), cache, labels, splits, cfg, tmp_path, progress=False)
    assert again.history == run_a.history


def test_resume_after_interruption_equals_uninterrupted_run(data, run_a, tmp_path, capsys, caplog):
    _, cache, labels, splits = data
    first = finetune(model0(), cache, labels, splits, CFG, tmp_path, progress=False, stop_after_epoch=1)
    assert not first.completed and [h["epoch"] for h in first.history] == [0, 1]
    with caplog.at_level(logging.INFO, logger="avelib.train.contrastive"):
        resumed = finetune(model0(), cache, labels, splits, CFG, tmp_path, progress=False)
    assert "resumed from" in caplog.text and "after epoch 1" in caplog.text
    assert resumed.completed and resumed.history == run_a.history
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, run_a.model.state_dict()[k]), k
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and set(last) >= {"model", "optimizer", "scheduler", "rng", "history", "run"}


@pytest.mark.parametrize("change", ["epochs", "initial_weights"])
def test_resume_with_other_settings_starts_fresh(data, tmp_path, capsys, change):
    _, cache, labels, splits = data
    first = finetune(model0(), cache, labels, splits, CFG, tmp_path, progress=False, stop_after_epoch=1)
    cfg = FinetuneConfig(**{**CFG.__dict__, "epochs": 1}) if change == "epochs" else CFG
    start = model0(seed=99) if change == "initial_weights" else model0()
    fresh = finetune(start, cache, labels, splits, cfg, tmp_path, progress=False, stop_after_epoch=1)
    assert "starting fresh" in capsys.readouterr().out
    assert [h["epoch"] for h in fresh.history] == [0, 1]
    if change == "initial_weights":  # really trained again, from the other start
        assert fresh.history[1]["train_loss"] != first.history[1]["train_loss"]


def test_run_finetune_from_params(data, tmp_path):
    root, cache, _, _ = data
    params = {
        "audioclip": {"profile": "small", "checkpoint": None},
        "finetune": {"epochs": 1, "batch_size": 4, "device": "cpu", "seed": 3, "eval_initial": False,
                     "logit_scale_init": 20.0},
    }
    res = run_finetune(params, cache.dir, root, tmp_path / "ft", progress=False)
    assert res.best_epoch == 1 and (tmp_path / "ft" / "best.pt").is_file()
    assert res.history[-1]["logit_scale"] == pytest.approx(20.0, rel=0.01)  # reset from 100, 2 small steps
    params["finetune"]["epochz"] = 1
    with pytest.raises(ValueError, match="epochz"):
        run_finetune(params, cache.dir, root, tmp_path / "ft2", progress=False)


def test_training_figures(data, run_a):
    from matplotlib.figure import Figure

    from avelib.viz.training import plot_finetune_loss, plot_finetune_recall, retrieval_heatmap

    hist = json.loads((run_a.out_dir / "history.json").read_text())
    assert isinstance(plot_finetune_loss(hist), Figure)
    fig = plot_finetune_recall(hist)  # best epoch read from history.json
    assert isinstance(plot_finetune_recall(run_a.history, run_a.best_epoch), Figure)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) >= 4
    _, cache, labels, splits = data
    heat = retrieval_heatmap(run_a.model, cache, labels, splits, n=3)
    assert heat.axes[0].images[0].get_array().shape == (3, 3)


def test_heads_only_trains_the_heads_and_keeps_the_bodies_statistics(data, tmp_path):
    from avelib.train.objective import HEADS

    _, cache, labels, splits = data
    start = {k: v.clone() for k, v in model0().state_dict().items()}
    run = finetune(model0(), cache, labels, splits, dataclasses.replace(CFG, layers="heads", eval_initial=False),
                   tmp_path, progress=False)
    moved = {k for k, v in run.model.state_dict().items() if not torch.equal(v, start[k])}
    assert moved and all(k.startswith(HEADS) for k in moved)  # BatchNorm statistics of the bodies too
    assert any(k.startswith("visual.attnpool") for k in moved) and any(k.startswith("audio.fc") for k in moved)
    with pytest.raises(ValueError, match="layers"):
        finetune(model0(), cache, labels, splits, dataclasses.replace(CFG, layers="body"), tmp_path / "x", progress=False)


def test_recipe_grid_keeps_the_best_run_on_validation(data, tmp_path):
    root, cache, _, _ = data
    params = {"audioclip": {"profile": "small", "checkpoint": None},
              "finetune": {"epochs": 1, "batch_size": 4, "device": "cpu", "seed": 3, "eval_batch_size": 8},
              "finetune_grid": {"lr": [3e-4, 1e-5], "layers": ["all", "heads"]}}
    res = run_finetune(params, cache.dir, root, tmp_path / "ft", progress=False)
    assert [(g["lr"], g["layers"]) for g in res.grid] == [(3e-4, "all"), (3e-4, "heads"), (1e-5, "all"), (1e-5, "heads")]
    kept = max(res.grid, key=lambda g: g["a2i_r1"])
    assert [g["chosen"] for g in res.grid].count(True) == 1 and res.grid[[g["chosen"] for g in res.grid].index(True)]["a2i_r1"] == kept["a2i_r1"]
    chosen = next(g for g in res.grid if g["chosen"])
    run_dir = tmp_path / "ft" / "grid" / f"lr{chosen['lr']:g}_{chosen['layers']}"
    for name in ("best.pt", "history.json", "last.pt", "plots/finetune_recall.csv"):  # the kept run's files, for extract
        assert (tmp_path / "ft" / name).read_bytes() == (run_dir / name).read_bytes()
    assert res.out_dir == tmp_path / "ft" and res.best_metric == chosen["a2i_r1"]
    with pytest.raises(ValueError, match="finetune_grid"):
        run_finetune({**params, "distributed": {"finetune_nproc": 2}}, cache.dir, root, tmp_path / "dp", progress=False)
