"""How much of the towers' variance is fine-tuning alone? (prints figures; not a test)

The tower-run study pretrains and fine-tunes the towers again on every run. With real AudioCLIP weights there is
one fixed pretrained checkpoint and only stage A's seed moves. This script measures f, the share of the
encoder-axis difference's tower variance (full model − frozen towers, test accuracy) that remains when every run
starts from run 0's pretrained towers: it fine-tunes `--fine-tunings` more times from `models/pretrain/best.pt`
(finetune.seed + k), extracts, trains the full model on each run's features (localizer seeds shifted per run),
and compares the per-run differences' variance with the per-run-pretraining study's (`--reference`, points²).

Needs the quick study's outputs (`make repro`); writes only under `--out`.

    python benchmarks/tower_variance.py --fine-tunings 5 --out runs/tower_variance
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from avelib.params import load_params
from avelib.stages.localizer import run_ablation
from avelib.stages.tower_runs import run_tower_runs

ENCODERS = ("finetuned", "frozen")


def shared_pretraining_params(params: dict[str, Any], runs: int) -> dict[str, Any]:
    """The params of a tower study whose runs all start from run 0's pretrained towers (as with real weights)."""
    p = copy.deepcopy(params)
    p["pretrain"]["enabled"] = False
    p["audioclip"]["checkpoint"] = "models/pretrain/best.pt"
    p["tower_runs"] = {**p["tower_runs"], "count": runs}
    return p


def features_root(out: Path) -> Path:
    """`<out>/features`: run 0's folders linked from data/features, runs 1.. written by the tower runs."""
    root = out / "features"
    root.mkdir(parents=True, exist_ok=True)
    for enc in ENCODERS:
        link = root / enc
        if not link.exists():
            link.symlink_to(Path("data/features", enc).resolve())
    return root


def seeds_part(variants: list[dict[str, Any]]) -> float:
    """What localizer seeds alone add to the variance of a per-run difference (points²): each side's seed
    spread over its S seeds (run 0's), both sides summed."""
    return float(sum(100**2 * np.var(v["test_accuracy"]["per_seed"], ddof=1) / len(v["test_accuracy"]["per_seed"])
                     for v in variants))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fine-tunings", type=int, default=5, help="more fine-tunings from run 0's pretrained towers")
    ap.add_argument("--reference", type=float, default=2.9,
                    help="tower variance of the encoder difference with a pretraining per run, points² (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=Path("runs/tower_variance"))
    args = ap.parse_args()
    params = shared_pretraining_params(load_params("params.yaml"), 1 + args.fine_tunings)
    root, t0 = features_root(args.out), time.perf_counter()
    run_tower_runs(params, "reports/finetune.json", "models/finetune/history.json", "data/pretrain",
                   args.out / "models", root / "tower_runs", "models/pretrain")
    axis = run_ablation(params, "encoder", root, "models/localizer/metrics.json", args.out / "encoder")
    frozen = next(v for v in axis["variants"] if v["name"] == "frozen")
    per_run = 100 * np.asarray(frozen["vs_reference"]["per_tower_run"])  # frozen − full, points
    total = float(per_run.var(ddof=1))
    towers = max(0.0, total - seeds_part(axis["variants"]))
    print(f"fine-tunings from one pretrained start: {len(per_run)} runs, {time.perf_counter() - t0:.0f} s")
    print("full − frozen per run (points): " + ", ".join(f"{-d:+.2f}" for d in per_run))
    print(f"variance of the per-run difference: {total:.2f} points²; less the seeds' part: {towers:.2f} points²")
    print(f"f = fine-tuning's share of the towers' variance: {towers / args.reference:.2f} "
          f"(reference, a pretraining per run: {args.reference:.2f} points²)")


if __name__ == "__main__":
    main()
