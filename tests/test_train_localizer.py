"""Localizer training harness: determinism, resume, learning, seed-averaged evaluation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from avelib.data.features import synthetic_features, write_features
from avelib.eval.peer import TestSelection
from avelib.models.baselines import BaselineConfig
from avelib.models.localizer import LocalizerConfig
from avelib.params import ParamsError, load_params, section
from avelib.train.localizer import BaselinesConfig, EvalConfig, PhaseConfig, TrainConfig, predict_arrays, train_model
from avelib.train.optim import adam
from avelib.train.runs import build_model, train_seeds
from avelib.train.seeding import seed_everything

SMALL = LocalizerConfig(hidden=16, heads=2, windows=(10, 5, 3))
FAST = TrainConfig(phases=(PhaseConfig((10,), 2), PhaseConfig((10, 5, 3), 3)), batch_size=16)


@pytest.fixture(scope="module")
def data():
    a, v, y, s = synthetic_features(n=80, audio_dim=12, visual_dim=16, seed=1)
    return (a, v), y, s


def _run(data, out_dir=None, stop_after=None, model=None):
    feats, y, s = data
    if model is None:
        seed_everything(0)
        model = build_model("aveclip", SMALL, 12, 16)
    res = train_model(model, feats, y, s, FAST, seed=0, out_dir=out_dir, progress=False, stop_after=stop_after)
    return model, res


def _curves(history):
    """History without the wall-clock seconds, which differ between identical runs."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_deterministic_same_seed(data):
    m1, r1 = _run(data)
    m2, r2 = _run(data)
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    assert [h["val_accuracy"] for h in r1.history] == [h["val_accuracy"] for h in r2.history]
    for k, t in m1.state_dict().items():
        assert torch.equal(t, m2.state_dict()[k]), k


def test_the_multi_tensor_adam_gives_the_bits_of_the_per_tensor_one():
    def trained(optimizer):
        seed_everything(0)
        model = build_model("aveclip", LocalizerConfig(hidden=16, heads=2), 8, 8)
        opt = optimizer(model)
        a, v, y = torch.randn(4, 10, 8), torch.randn(4, 10, 8), torch.randint(0, 29, (4, 10))
        for _ in range(5):
            opt.zero_grad(set_to_none=True)
            model.loss(model(a, v), y).backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    ours = trained(lambda m: adam(m, 3e-3, 1e-4))
    per_tensor = trained(lambda m: torch.optim.Adam(m.parameters(), lr=3e-3, weight_decay=1e-4, foreach=False))
    assert torch.equal(ours, per_tensor)


def test_history_phases_and_best_epoch(data, tmp_path):
    model, res = _run(data, out_dir=tmp_path)
    assert len(res.history) == 5
    assert [h["windows"] for h in res.history] == [[10], [10]] + [[10, 5, 3]] * 3
    vals = [h["val_accuracy"] for h in res.history]
    assert res.best_epoch == int(np.argmax(vals)) and res.best_val_accuracy == max(vals)
    # the returned model holds the best weights: its validation accuracy is the best one
    feats, y, s = data
    pred, alpha = predict_arrays(model, feats[0][s["val"]], feats[1][s["val"]])
    assert (pred == y[s["val"]]).mean() == pytest.approx(res.best_val_accuracy)
    assert alpha.shape == (len(s["val"]), 10)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == res.best_epoch and best["params"]["train"]["lr"] == FAST.lr
    assert json.loads((tmp_path / "history.json").read_text())["best_epoch"] == res.best_epoch
    assert all(h["seconds"] > 0 for h in res.history)  # per-epoch wall time (benchmarks read it)
    assert all(t.device.type == "cpu" for t in best["model"].values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where no GPU exists")
def test_cuda_without_gpu_is_a_clear_error(data):
    feats, y, s = data
    model = build_model("aveclip", SMALL, 12, 16)
    with pytest.raises(RuntimeError, match="cuda"):
        train_model(model, feats, y, s, dataclasses.replace(FAST, device="cuda"), progress=False)


def test_resume_equals_uninterrupted(data, tmp_path):
    full_model, full = _run(data)
    _, part = _run(data, out_dir=tmp_path, stop_after=3)  # "interrupted" after 3 of 5 epochs
    assert len(part.history) == 3
    resumed_model, resumed = _run(data, out_dir=tmp_path)  # fresh model, same seed -> resumes
    assert resumed.resumed_from == 3
    assert _curves(resumed.history) == _curves(full.history)
    assert resumed.best_epoch == full.best_epoch
    for k, t in full_model.state_dict().items():
        assert torch.equal(t, resumed_model.state_dict()[k]), k
    _, again = _run(data, out_dir=tmp_path)  # complete run: nothing left to train
    assert again.resumed_from == 5 and _curves(again.history) == _curves(full.history)


def test_changed_config_restarts(data, tmp_path):
    _run(data, out_dir=tmp_path, stop_after=2)
    feats, y, s = data
    seed_everything(0)
    model = build_model("aveclip", SMALL, 12, 16)
    other = TrainConfig(phases=FAST.phases, batch_size=16, lr=1e-3)
    res = train_model(model, feats, y, s, other, seed=0, out_dir=tmp_path, progress=False)
    assert res.resumed_from == 0 and len(res.history) == 5


def test_learns_synthetic_task():
    """Class-mean features + noise, events need both modalities: the localizer gets it right quickly."""
    a, v, y, s = synthetic_features(n=240, audio_dim=24, visual_dim=24, noise=1.0, seed=0)
    seed_everything(0)
    model = build_model("aveclip", LocalizerConfig(hidden=32, heads=2, windows=(10, 5, 2)), 24, 24)
    cfg = TrainConfig(phases=(PhaseConfig((10,), 4), PhaseConfig((10, 5, 2), 16)), batch_size=32)
    train_model(model, (a, v), y, s, cfg, seed=0, progress=False)
    pred, _ = predict_arrays(model, a[s["test"]], v[s["test"]])
    acc = (pred == y[s["test"]]).mean()
    print(f"synthetic test accuracy: both {acc:.3f}")
    assert acc > 0.85, acc
    # a single modality cannot tell event from background seconds as well
    seed_everything(0)
    audio_only = build_model("aveclip", LocalizerConfig(hidden=32, heads=2, windows=(10, 5, 2), modality="audio"), 24, 24)
    train_model(audio_only, (a, v), y, s, cfg, seed=0, progress=False)
    pred_a, _ = predict_arrays(audio_only, a[s["test"]], v[s["test"]])
    acc_a = (pred_a == y[s["test"]]).mean()
    print(f"synthetic test accuracy: audio only {acc_a:.3f}")
    assert acc_a < acc - 0.05


@pytest.mark.parametrize("kind", ["avel", "mlp"])
def test_baselines_train_with_same_harness(data, kind):
    feats, y, s = data
    seed_everything(0)
    model = build_model(kind, BaselineConfig(hidden=16, lstm_hidden=8), 12, 16)
    res = train_model(model, feats, y, s, TrainConfig(phases=(), epochs=3, lr=1e-2), seed=0, progress=False)
    assert len(res.history) == 3 and res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.history[0]["windows"] is None


def test_build_model_checks_config():
    with pytest.raises(TypeError):
        build_model("aveclip", BaselineConfig(), 4, 4)
    with pytest.raises(ValueError):
        build_model("transformer", BaselineConfig(), 4, 4)  # type: ignore[arg-type]


def test_evaluate_seeds_metrics_format(data, tmp_path):
    feats, y, s = data
    fdir = tmp_path / "features"
    write_features(fdir / "audio.h5", feats[0])
    write_features(fdir / "visual_mean.h5", feats[1])
    ev = EvalConfig(seeds=(0, 1), postprocess_candidates=(0, 1, 2))
    m = train_seeds(fdir, y, s, "aveclip", SMALL, FAST, ev, out_dir=tmp_path / "out", dataset="synthetic", progress=False)
    assert m["dataset"] == "synthetic"
    for key in ("test_accuracy", "test_accuracy_no_postprocess", "val_accuracy"):
        assert set(m[key]) == {"mean", "std", "per_seed"} and len(m[key]["per_seed"]) == 2
    assert all(L in (0, 1, 2) for L in m["chosen_max_len"])
    assert np.array(m["confusion_matrix"]).sum() == 2 * len(s["test"]) * 10
    assert len(m["per_class_accuracy"]) == 29 and "background" in m["per_class_accuracy"]
    assert set(m["event_background_pr"]) == {"event", "background"}
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk["test_accuracy"] == m["test_accuracy"]
    npz = np.load(tmp_path / "out" / "predictions.npz")
    assert npz["pred_seed1"].shape == (len(s["test"]), 10) and "alpha_seed0" in npz
    m2 = train_seeds(feats, y, s, "mlp", BaselineConfig(hidden=8), BaselinesConfig().train_config(FAST, "mlp"),
                        EvalConfig(seeds=(0,)), progress=False)
    assert m2["model"] == "mlp" and m2["params"]["train"]["lr"] == BaselinesConfig().lr


def test_params_yaml_sections_parse():
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    section(params, "localizer", LocalizerConfig)
    section(params, "train", TrainConfig)
    section(params, "evaluate", EvalConfig)
    baselines = section(params, "baselines", BaselinesConfig)
    assert isinstance(baselines.model, BaselineConfig)
    avel = baselines.train_config(section(params, "train", TrainConfig), "avel")  # AVEL's recipe, not the localizer's
    assert (avel.lr, avel.epochs, avel.phases, avel.batch_size, avel.grad_clip, avel.schedule) == (1e-3, 300, (), 64, 0, "none")
    assert baselines.train_config(TrainConfig(), "avel", weak=True).epochs == 250
    assert baselines.train_config(TrainConfig(), "mlp") == TrainConfig(lr=baselines.lr)
    with pytest.raises(ParamsError):
        section({"train": {"epoch": 3}}, "train", TrainConfig)


def test_evaluate_variants_runs_all_models(data, tmp_path, monkeypatch):
    import avelib.train.runs as L

    feats, y, s = data
    monkeypatch.setattr(L, "VARIANTS", (("aveclip", "aveclip", None), ("aveclip_audio_only", "aveclip", "audio"),
                                        ("mlp", "mlp", None)))
    ev = EvalConfig(seeds=(0,))
    tc = TrainConfig(phases=(PhaseConfig((10,), 1), PhaseConfig((10, 5, 3), 1)), batch_size=32)
    m = L.train_variants(feats, y, s, SMALL, tc, ev, out_dir=tmp_path, dataset="synthetic", progress=False,
                            baselines=BaselinesConfig(lr=0.02, model=BaselineConfig(hidden=8)))
    assert set(m["variants"]) == {"aveclip", "aveclip_audio_only", "mlp"}
    assert m["test_accuracy"] == m["variants"]["aveclip"]["test_accuracy"]
    assert m["variants"]["aveclip_audio_only"]["params"]["model"]["modality"] == "audio"
    assert (tmp_path / "mlp" / "metrics.json").is_file() and (tmp_path / "metrics.json").is_file()
    assert m["variants"]["mlp"]["params"]["train"]["lr"] == 0.02 and m["params"]["train"]["lr"] == tc.lr


def test_evaluation_only_variant_continues_from_the_trained_run(data, tmp_path):
    """A variant that trains the same (here: no post-processing) is evaluated from the trained run's
    checkpoints, with exactly the numbers of training it again, and trains nothing itself."""
    from avelib.train.ablations import same_training, variant_configs

    feats, y, s = data
    main_ev = EvalConfig(seeds=(0, 1), postprocess_candidates=(0, 1, 2))
    main = train_seeds(feats, y, s, "aveclip", SMALL, FAST, main_ev, out_dir=tmp_path / "main", progress=False)
    off = dataclasses.replace(main_ev, postprocess_candidates=(0,))
    fresh = train_seeds(feats, y, s, "aveclip", SMALL, FAST, off, out_dir=tmp_path / "fresh", progress=False)
    reused = train_seeds(feats, y, s, "aveclip", SMALL, FAST, off, out_dir=tmp_path / "reused", progress=False,
                            trained=tmp_path / "main")
    assert reused["test_accuracy"] == fresh["test_accuracy"] and reused["chosen_max_len"] == [0, 0]
    assert reused["test_correct_seconds"] == fresh["test_correct_seconds"]
    assert reused["history"] == main["history"]  # the main run's epochs, wall-clock seconds included: not retrained
    assert reused["history"] != fresh["history"]
    base = {"localizer": dataclasses.asdict(SMALL), "train": {}, "evaluate": {}}
    full = variant_configs({}, base, "main")
    assert same_training(variant_configs({"evaluate": {"postprocess_candidates": [0]}}, base, "off"), full)
    assert not same_training(variant_configs({"evaluate": {"visual": "single"}}, base, "single"), full)
    assert not same_training(variant_configs({"localizer": {"refine": False}}, base, "refine"), full)
    with pytest.raises(FileNotFoundError, match="no resume point"):
        train_seeds(feats, y, s, "aveclip", SMALL, FAST, off, out_dir=tmp_path / "x", progress=False,
                       trained=tmp_path / "nowhere")


def test_peer_protocol_is_recorded_beside_and_never_changes_ours(data, tmp_path):
    """Test-selected (epoch, L) >= validation-selected on every seed; the run itself is unchanged; it resumes."""
    feats, y, s = data
    ev = EvalConfig(seeds=(0, 1), postprocess_candidates=(0, 1, 2))
    plain = train_seeds(feats, y, s, "aveclip", SMALL, FAST, ev, progress=False)
    peer = train_seeds(feats, y, s, "aveclip", SMALL, FAST, ev, out_dir=tmp_path / "a", progress=False,
                       peer_protocol=True)
    assert "test_selected" not in plain
    assert peer["test_accuracy"] == plain["test_accuracy"] and peer["chosen_max_len"] == plain["chosen_max_len"]
    selected = peer["test_selected"]
    assert all(t >= v for t, v in zip(selected["test_accuracy"]["per_seed"], peer["test_accuracy"]["per_seed"]))
    assert selected["inflation"]["difference"] >= 0 and all(L in (0, 1, 2) for L in selected["max_len"])
    assert len(selected["test_accuracy_ci"]["ci"]) == 2 and all(0 <= e < 5 for e in selected["epoch"])
    # a run interrupted after 2 epochs and resumed records the same test selection
    seed_everything(0)
    model = build_model("aveclip", SMALL, 12, 16)
    first = TestSelection(np.asarray(s["test"]), y[s["test"]], (0, 1, 2))
    train_model(model, feats, y, s, FAST, seed=0, out_dir=tmp_path / "b", progress=False, stop_after=2,
                test_selection=first)
    seed_everything(0)
    resumed = TestSelection(np.asarray(s["test"]), y[s["test"]], (0, 1, 2))
    train_model(build_model("aveclip", SMALL, 12, 16), feats, y, s, FAST, seed=0, out_dir=tmp_path / "b",
                progress=False, test_selection=resumed)
    assert resumed.accuracy == selected["test_accuracy"]["per_seed"][0] and resumed.epoch == selected["epoch"][0]


def test_peer_table_has_every_main_table_run(data, tmp_path):
    """AVE-CLIP, its one-modality variants (the `modality` axis, trained with the peer protocol) and the baselines."""
    from avelib.eval.loaders import main_table_runs
    from avelib.eval.peer import peer_rows
    from avelib.eval.results import baselines_summary, main_metrics
    from avelib.io import write_json
    from avelib.params import resolved
    from avelib.train.ablations import merge_axes, run_axis, write_axis

    (audio, visual), y, s = data
    write_features(tmp_path / "finetuned" / "audio.h5", audio)
    write_features(tmp_path / "finetuned" / "visual_mean.h5", visual)
    ev = EvalConfig(seeds=(0,))
    main = train_seeds((audio, visual), y, s, "aveclip", SMALL, FAST, ev, progress=False, peer_protocol=True)
    mlp = train_seeds((audio, visual), y, s, "mlp", BaselineConfig(hidden=8), BaselinesConfig().train_config(FAST, "mlp"),
                      ev, progress=False, peer_protocol=True)
    base = {"localizer": resolved(SMALL), "train": resolved(FAST), "evaluate": resolved(ev)}
    axis = run_axis("modality", {"audio": {"localizer": {"modality": "audio"}}, "both": {}}, base, tmp_path, y, s,
                    "toy", main_run=main, progress=False, peer_protocol=True)
    reports = tmp_path / "reports"
    write_json(main_metrics(main, "toy"), reports / "metrics.json")
    write_json(baselines_summary({"mlp": mlp}, main, "toy"), reports / "baselines.json")
    write_axis(axis, reports / "ablations" / "modality.json")
    write_json(merge_axes([reports / "ablations" / "modality.json"]), reports / "ablations.json")
    rows = peer_rows(main_table_runs(reports))
    assert [r[0] for r in rows] == ["AVE-CLIP (ours)", "AVE-CLIP, audio only", "per-second MLP (our harness)"]
    audio_only = next(v for v in axis["variants"] if v["name"] == "audio")
    assert rows[1][1] == f"{100 * audio_only['test_accuracy']['mean']:.2f}"
    assert audio_only["test_selected"]["inflation"]["difference"] >= 0  # test selection never loses to ours


def test_ablation_jobs_are_numbered_alike_in_every_process(monkeypatch, tmp_path):
    """A worker reads the variants from key-sorted JSON, the stage from params.yaml: the job order (which
    process trains which seed) must not depend on the order of the variants."""
    from avelib.distributed import Shard
    from avelib.params import resolved
    from avelib.train import ablations

    calls: list[list[str]] = []
    monkeypatch.setattr(ablations, "train_seeds", lambda *a, **kw: calls[-1].append(kw["out_dir"].name))
    base = {"localizer": resolved(SMALL), "train": resolved(FAST), "evaluate": resolved(EvalConfig(seeds=(0,)))}
    variants = {"temporal": {"localizer": {"attention": "temporal"}}, "feature": {"localizer": {"attention": "feature"}},
                "both": {}}
    for order in (variants, dict(sorted(variants.items()))):
        calls.append([])
        ablations.run_axis("attention", order, base, tmp_path, np.zeros((1, 10)), {}, "toy", main_run={},
                           out_dir=tmp_path, owns_next=Shard(0, 2).take, progress=False)
    assert calls[0] == calls[1] == ["feature", "temporal"]
