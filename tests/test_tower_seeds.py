"""Each tower run trains its localizers on seeds of its own.

With `pretrain.enabled: false` the frozen towers are the same in every tower run, so their features are too. Had
every run trained seeds 0-4 on them, the runs' frozen results would be one draw counted T times, and the bootstrap
over tower runs would narrow that side's CI as if it were T independent ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from avelib.data.features import FeatureFileError, tower_feature_dirs
from avelib.eval.stats import tower_difference
from avelib.models.localizer import LocalizerConfig
from avelib.train import ablations
from avelib.train.localizer import EvalConfig, TrainConfig
from avelib.train.seeding import tower_run_seeds


def test_run_k_takes_the_next_block_of_seeds():
    assert tower_run_seeds((0, 1, 2, 3, 4), 0) == (0, 1, 2, 3, 4)
    assert tower_run_seeds((0, 1, 2, 3, 4), 2) == (10, 11, 12, 13, 14)
    runs = [set(tower_run_seeds((3, 5), k)) for k in range(4)]
    assert all(a.isdisjoint(b) for i, a in enumerate(runs) for b in runs[i + 1:])


def test_the_tower_runs_of_an_ablation_train_disjoint_seeds(tmp_path, monkeypatch):
    """Every (variant, run) trains; no seed of one run is trained again on another (the frozen side included)."""
    for k in (1, 2):
        for enc in ("finetuned", "frozen"):
            (tmp_path / "tower_runs" / f"run{k}" / enc).mkdir(parents=True)
    trained: list[tuple[str, int, tuple[int, ...]]] = []

    def fake_train_seeds(folder, *args, encoder, **kw):
        trained.append((encoder, int(folder.parent.name.removeprefix("run")), args[5].seeds))
        return {}

    monkeypatch.setattr(ablations, "train_seeds", fake_train_seeds)
    evaluate = EvalConfig(seeds=(0, 1, 2, 3, 4))
    configs = {name: (enc, LocalizerConfig(), TrainConfig(), evaluate)
               for name, enc in (("full_model", "finetuned"), ("frozen", "frozen"))}
    ablations._tower_runs(configs, tmp_path, 3, np.zeros((1, 10)), {}, "SynthAVE", False, None, None)
    assert sorted((enc, k) for enc, k, _ in trained) == [("finetuned", 1), ("finetuned", 2), ("frozen", 1), ("frozen", 2)]
    for enc in ("finetuned", "frozen"):
        seeds = [set(s) for e, _, s in trained if e == enc] + [set(evaluate.seeds)]  # run 0 trains evaluate.seeds
        assert all(a.isdisjoint(b) for i, a in enumerate(seeds) for b in seeds[i + 1:]), enc


def test_a_counted_run_that_is_missing_names_the_command(tmp_path):
    (tmp_path / "frozen").mkdir()
    assert tower_feature_dirs(tmp_path, "frozen") == [tmp_path / "frozen"]  # the quick study: run 0 only
    with pytest.raises(FeatureFileError, match="make confirm"):
        tower_feature_dirs(tmp_path, "frozen", 2)


def test_one_draw_counted_ten_times_narrows_the_ci():
    """What shared seeds did: ten copies of one frozen run's scores give a narrower CI than ten independent
    draws of the same seed spread, so the shift matters for the reported intervals."""
    rng = np.random.default_rng(0)
    fine = [rng.uniform(0.7, 0.9, (5, 80)) + rng.normal(0, 0.02) for _ in range(10)]
    one = rng.uniform(0.6, 0.8, (5, 80)) + rng.normal(0, 0.01, (5, 1))
    copies = [one] * 10
    independent = [rng.uniform(0.6, 0.8, (5, 80)) + rng.normal(0, 0.01, (5, 1)) for _ in range(10)]
    width = [np.diff(tower_difference(fine, b, resamples=2000)["ci"])[0] for b in (copies, independent)]
    assert width[0] < width[1]
