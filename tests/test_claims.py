"""Comparisons with verdicts, and the results blocks of README.md and docs/results.md generated from reports/*.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avelib.eval import claims, loaders, results, stats
from avelib.eval.metrics import summarize
from avelib.eval.tables import (README_BEGIN, README_END, RESULTS_PAGE, readme_results, results_page, sync_readme,
                                sync_results_page)
from avelib.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def _run(level: float, seed: int) -> dict:
    """A metrics dict as train_seeds writes it: 3 seeds x 50 test videos."""
    rng = np.random.default_rng(seed)
    correct = np.clip(np.round(10 * level + 1.5 * rng.standard_normal((3, 50))), 0, 10).astype(int)
    acc = [float(c.sum() / 500) for c in correct]
    return {"test_accuracy": summarize(acc), "test_accuracy_no_postprocess": summarize(acc),
            "val_accuracy": summarize(acc), "test_accuracy_ci": stats.accuracy_ci(stats.per_video_accuracy(correct)),
            "test_correct_seconds": correct.tolist(), "chosen_max_len": [0, 0, 0]}


def make_reports(folder: Path) -> Path:
    main, weak, close = _run(0.9, 0), _run(0.6, 1), _run(0.9, 2)
    write_json(results.main_metrics(main, "SynthAVE"), folder / "metrics.json")
    write_json(results.baselines_summary({"avel": weak}, main, "SynthAVE"), folder / "baselines.json")
    variants = [{"axis": "refine", "name": n, "params": {}, "dataset": "SynthAVE", "is_full_model": full,
                 **results.summary(run, main)} for n, run, full in (("off", close, False), ("on", main, True))]
    write_json({"variants": variants}, folder / "ablations.json")
    return folder


def test_verdicts_follow_the_paired_ci(tmp_path):
    found = {(c.group, c.other): c for c in loaders.load_comparisons(make_reports(tmp_path))}
    assert set(found) == {("baselines", "AVEL A+V-att (our harness)"), ("refine", "off")}  # not the full model itself
    weak = found["baselines", "AVEL A+V-att (our harness)"]
    assert weak.difference == pytest.approx(0.3, abs=0.05) and weak.ci[0] > 0
    assert weak.verdict == "resolved: full model higher"
    close = found["refine", "off"]
    assert close.ci[0] < 0 < close.ci[1] and close.verdict == "not resolved"
    turned = claims.flipped("x", "y", {"difference": 0.02, "ci": [0.01, 0.03], "p_value": 0.01})
    assert turned.ci == (-0.03, -0.01) and turned.verdict == "resolved: y higher"


def test_a_comparison_between_tower_sets_of_one_run_each_is_never_resolved(tmp_path):
    """Fine-tuned vs frozen towers: the CI resamples videos and seeds, not the towers' training."""
    from avelib.eval.tasks import weak_comparisons

    high, low = _run(0.9, 0), _run(0.5, 1)
    plain = stats.compare_runs(high, low)
    assert plain["verdict"] == "a"  # resolved by its CI ...
    towers = stats.compare_tower_runs([high], [low])
    assert towers["verdict"] == stats.ONE_TOWER_RUN and towers["ci"] == plain["ci"] and towers["tower_runs"] == 1
    turned = claims.flipped("encoder", "frozen", towers)
    assert turned.verdict == stats.ONE_TOWER_RUN and turned.tower_runs == 1
    compared = weak_comparisons({("mlp", "finetuned"): high, ("mlp", "frozen"): low}, None)
    assert [c["verdict"] for c in compared] == [stats.ONE_TOWER_RUN]
    # ... which several tower runs that agree decide, and runs that disagree leave open
    agree = weak_comparisons({("mlp", "finetuned"): high, ("mlp", "frozen"): low}, None,
                             {("mlp", "finetuned"): [_run(0.9, 2), _run(0.9, 3)], ("mlp", "frozen"): [_run(0.5, 4), _run(0.5, 5)]})
    assert agree[0]["verdict"] == "a" and agree[0]["tower_runs"] == 3 and len(agree[0]["per_tower_run"]) == 3
    split = weak_comparisons({("mlp", "finetuned"): high, ("mlp", "frozen"): low}, None,
                             {("mlp", "finetuned"): [_run(0.5, 2), _run(0.2, 3)], ("mlp", "frozen"): [_run(0.9, 4), _run(0.5, 5)]})
    assert split[0]["verdict"] == "not resolved" and split[0]["ci"][0] < 0 < split[0]["ci"][1]


def test_readme_block_is_written_then_checked(tmp_path):
    reports = make_reports(tmp_path / "reports")
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_BEGIN}\nstale\n{README_END}\n\nafter\n")
    assert not sync_readme(readme, reports, check=True) and "stale" in readme.read_text()
    assert not sync_readme(readme, reports)
    text = readme.read_text()
    assert sync_readme(readme, reports, check=True) and text.endswith(f"{README_END}\n\nafter\n")
    # the headline sentence of the supervised task (weak and cross-modal files absent: said so), then the main table
    assert "- **Supervised localization:** AVE-CLIP " in text and "(resolved: AVE-CLIP higher)" in text
    assert text.count("- not available: ") == 2 and "| AVEL A+V-att (our harness) |" in text
    assert "| refine | off |" not in text  # every other table is on docs/results.md
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="README.md: needs exactly one"):
        sync_readme(readme, reports)


def test_results_page_block_holds_every_table_and_the_tower_run_study(tmp_path):
    reports = make_reports(tmp_path / "reports")
    page = tmp_path / "results.md"
    page.write_text(f"# Results\n\n{README_BEGIN}\n{README_END}\n\n## Reading the tables\n")
    assert not sync_results_page(page, reports)
    text = page.read_text()
    assert sync_results_page(page, reports, check=True) and text.endswith(f"{README_END}\n\n## Reading the tables\n")
    assert "| refine | off |" in text and "not resolved" in text and "resolved: full model higher" in text
    assert "not available: reports/confirm/tower_runs.json missing; `make confirm` writes it." in text
    # the tower-run study's files, where `make confirm` wrote them
    from avelib.eval.results import stage_a_across_runs

    confirm = reports / "confirm"
    write_json(stage_a_across_runs([_history([0.3, 0.5, 0.9], best=2), _history([0.3, 0.8], best=1)]),
               confirm / "tower_runs.json")
    encoder = {**_run(0.8, 3), "axis": "encoder", "name": "frozen", "is_full_model": False, "dataset": "SynthAVE",
               "vs_reference": stats.compare_tower_runs([_run(0.8, 3)] * 3, [_run(0.9, 4)] * 3)}
    write_json({"variants": [encoder]}, confirm / "ablation_encoder.json")
    text = results_page(reports)
    assert "Stage A over 2 tower runs" in text and "| encoder | frozen |" in text and "over 3 tower runs" in text
    assert "reports/confirm/tower_runs.json missing" not in text and "reports/confirm/weak.json missing" in text


@pytest.mark.parametrize("path", ["README.md", RESULTS_PAGE.as_posix()])
def test_committed_results_blocks_equal_the_committed_reports(path):
    """The numbers of README.md and docs/results.md are those of reports/*.json (written by the run in dvc.lock)."""
    if not (ROOT / "reports" / "metrics.json").is_file():
        pytest.skip("no committed reports/metrics.json")
    sync = sync_readme if path == "README.md" else sync_results_page
    assert sync(ROOT / path, ROOT / "reports", check=True), (
        f"{path} results block differs from reports/*.json: run `python -m avelib readme-tables`")
    assert "| AVEL" in readme_results(ROOT / "reports")


def _history(levels: list[float], best: int) -> dict:
    """A stage-A history.json: per-video R@1 of 30 validation videos rising with the level."""
    rng = np.random.default_rng(0)
    noise = rng.random(30)
    entries = []
    for epoch, level in enumerate(levels):
        per_video = (noise < level).astype(float)
        entries.append({"epoch": epoch, "a2i_r1": float(per_video.mean()), "i2a_r1": level, "a2i_r5": 1.0,
                        "i2a_r5": 1.0, "chance_r1": 0.05, "chance_r5": 0.25, "a2i_r1_per_video": per_video.tolist(),
                        "a2i_r1_ci": [float(per_video.mean()) - 0.1, float(per_video.mean()) + 0.1],
                        "val_pairs": 120, "val_videos": 30})
    return {"epochs": entries, "best_epoch": best}


def test_stage_a_summary_pairs_the_kept_epoch_with_the_start():
    from avelib.eval.results import stage_summary

    up = stage_summary(_history([0.3, 0.5, 0.9], best=2))
    assert up["kept_epoch"] == 2 and up["start"]["a2i_r1"] < up["kept"]["a2i_r1"]
    assert up["kept_minus_start"]["verdict"] == "a" and "a2i_r1_per_video" not in up["epochs"][0]
    assert stage_summary(_history([0.5, 0.5], best=0))["kept_minus_start"]["verdict"] == "not resolved"


def test_stage_a_line_lists_the_recipe_grid():
    from avelib.eval.loaders import stage_a_text
    from avelib.eval.results import stage_summary

    grid = [{"lr": 1e-4, "layers": "all", "kept_epoch": 2, "a2i_r1": 0.8, "a2i_r1_ci": [0.7, 0.9], "chosen": True},
            {"lr": 1e-5, "layers": "heads", "kept_epoch": 0, "a2i_r1": 0.3, "a2i_r1_ci": [0.2, 0.4], "chosen": False}]
    line = stage_a_text({**stage_summary(_history([0.3, 0.5, 0.9], best=2)), "grid": grid})
    assert "Recipe grid, each run's kept epoch: lr 0.0001, all: epoch 2, 0.800 [0.700, 0.900] (kept); " \
           "lr 1e-05, heads: epoch 0, 0.300 [0.200, 0.400]." in line
    assert "Recipe grid" not in stage_a_text(stage_summary(_history([0.3, 0.5, 0.9], best=2)))


def test_report_page_shows_cis_differences_and_stage_a(tmp_path):
    from avelib.report import build_index
    from avelib.eval.results import stage_summary

    reports = make_reports(tmp_path / "reports")
    write_json(stage_summary(_history([0.3, 0.5, 0.9], best=2)), reports / "finetune.json")
    page = build_index(reports, tmp_path / "params.yaml", tmp_path / "dvc.lock", reports / "index.html").read_text()
    assert "95 % CI" in page and "resolved: full model higher" in page and "not resolved" in page
    assert 'id="stage-a"' in page and "fine-tuning helped (resolved)" in page
    assert "Stage A (contrastive fine-tuning): " in results_page(reports)


def test_stage_a_across_tower_runs_resamples_the_runs_and_the_report_shows_each_run(tmp_path):
    from avelib.eval.loaders import tower_run_rows, tower_runs_text
    from avelib.eval.results import pretraining_summary, stage_a_across_runs
    from avelib.report.towers import tower_runs

    runs = stage_a_across_runs([_history([0.3, 0.5, 0.9], best=2), _history([0.3, 0.8], best=1),
                                _history([0.4, 0.9, 0.7], best=1)])
    assert runs["kept_epochs"] == [2, 1, 1] and runs["kept_minus_start"]["tower_runs"] == 3
    assert runs["kept_minus_start"]["verdict"] == "a" and len(runs["kept_minus_start"]["per_tower_run"]) == 3
    line = tower_runs_text(runs)
    assert "run 1: epoch 1" in line and "fine-tuning helped (resolved)" in line
    one = stage_a_across_runs([_history([0.3, 0.9], best=1)])
    assert one["kept_minus_start"]["verdict"] == stats.ONE_TOWER_RUN  # one run: the towers' variance is unknown
    unscored = [{**h, "epochs": h["epochs"][1:]} for h in (_history([0.3, 0.9], best=1), _history([0.3, 0.8], best=1))]
    assert stage_a_across_runs(unscored)["kept_minus_start"] is None  # eval_initial: false, no start to compare
    assert tower_runs_text(stage_a_across_runs(unscored)).endswith("validation videos resampled): —.")
    assert all(r["pretraining kept epoch"] == "—" for r in tower_run_rows(runs))  # pretraining disabled: none
    runs["pretraining"] = [pretraining_summary(_history([0.1, 0.2, 0.15], best=k)) for k in (1, 2, 1)]
    assert [r["pretraining kept epoch"] for r in tower_run_rows(runs)] == ["1", "2", "1"]
    write_json(runs, tmp_path / "tower_runs.json")
    encoder = {**_run(0.8, 3), "axis": "encoder", "name": "frozen", "is_full_model": False,
               "vs_reference": stats.compare_tower_runs([_run(0.8, 3)] * 3, [_run(0.9, 4)] * 3)}
    write_json({"variants": [encoder]}, tmp_path / "ablations.json")
    blocks = tower_runs(tmp_path)
    html = "".join(str(b) for b in blocks)
    assert "ablation encoder: frozen" in html and html.count("data:image/png;base64,") == 1
    assert "pretraining R@1 [95 % CI]" in html
