"""torch.distributed on this machine (gloo, 2 CPU processes): seeds spread over torchrun ranks give
the very numbers of one process, for the supervised and the weak localizer stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avelib.data.ave import BACKGROUND, CATEGORIES
from avelib.data.features import FEATURE_FILES, synthetic_features, write_features
from avelib.distributed import Shard
from avelib.stages.localizer import run_train
from avelib.stages.tasks import run_weak

pytestmark = [pytest.mark.slow, pytest.mark.distributed]  # run by `make faults` (CI)
TRAIN = {"phases": [{"windows": [10], "epochs": 1}, {"windows": [10, 5], "epochs": 2}], "threads": 1}


def test_shard_hands_out_jobs_round_robin():
    shards = [Shard(r, 3) for r in range(3)]
    taken = [[s.take() for _ in range(7)] for s in shards]
    assert [[j for j, t in enumerate(row) if t] for row in taken] == [[0, 3, 6], [1, 4], [2, 5]]
    assert all(sum(col) == 1 for col in zip(*taken))  # every job on exactly one rank


def _tiny_root(tmp: Path) -> tuple[Path, Path]:
    """An AVE-layout root (annotations and splits only) and a features root for the same 40 videos."""
    audio, visual, labels, splits = synthetic_features(n=40, audio_dim=8, visual_dim=8, seed=3)
    root = tmp / "ave"
    root.mkdir()
    lines = []
    for i, row in enumerate(labels):
        event = np.flatnonzero(row != BACKGROUND)
        cls, start, end = (int(row[event[0]]), int(event[0]), int(event[-1]) + 1) if len(event) else (0, 0, 0)
        lines.append(f"{CATEGORIES[cls]}&v{i:03d}&good&{start}&{end}")
    (root / "Annotations.txt").write_text("\n".join(lines) + "\n")
    for name, file in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        (root / file).write_text("\n".join(lines[i] for i in splits[name]) + "\n")
    for enc in ("finetuned", "frozen"):
        for key, arr in (("audio", audio), ("mean", visual), ("single", visual)):
            write_features(tmp / "features" / enc / FEATURE_FILES[key], arr)
    return root, tmp / "features"


def _without_times(obj):
    """A result without its wall-clock fields (they differ on every run)."""
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in ("seconds", "train_seconds")}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def _params(root: Path, nproc: int) -> dict:
    return {"data": {"dataset": "synthave", "root": str(root)}, "localizer": {"hidden": 16, "heads": 2},
            "train": TRAIN, "evaluate": {"seeds": [0, 1, 2], "postprocess_candidates": [0, 1]},
            "weak": {"models": ["aveclip", "mlp"], "encoders": ["finetuned"], "thresholds": [0.3, 0.5]},
            "distributed": {"localizer_nproc": nproc}}


def test_two_ranks_train_the_same_seeds_as_one_process(tmp_path, capfd):
    root, features = _tiny_root(tmp_path)
    one = run_train(_params(root, 1), features / "finetuned", tmp_path / "one", progress=False)
    two = run_train(_params(root, 2), features / "finetuned", tmp_path / "two", progress=False)
    assert "training on 2 ranks" in capfd.readouterr().out
    assert _without_times(two) == _without_times(one)
    for seed in (0, 1, 2):  # every seed's checkpoint came from a rank and was only resumed here
        assert (tmp_path / "two" / f"seed{seed}" / "best.pt").is_file()
    assert not (tmp_path / "two" / "ranks_spec.json").exists()

    weak_one = run_weak(_params(root, 1), features, None, tmp_path / "weak_one")
    weak_two = run_weak(_params(root, 2), features, None, tmp_path / "weak_two")
    assert weak_two == weak_one


def test_a_failing_rank_fails_the_stage(tmp_path):
    root, features = _tiny_root(tmp_path)
    params = _params(root, 2)
    params["evaluate"]["seeds"] = [0, "x"]  # the ranks' configs fail to parse too
    with pytest.raises(Exception, match="evaluate.seeds|torchrun exited"):
        run_train(params, features / "finetuned", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing that looks complete
