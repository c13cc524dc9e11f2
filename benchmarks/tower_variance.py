"""How much of the towers' variance is fine-tuning alone? (prints figures; not a test)

Reads a finished tower-run study (`make confirm`): the encoder axis's difference, full model − frozen towers, on
every tower run (reports/confirm/ablation_encoder.json). Its variance over the runs, less what the localizer seeds
add, is the towers' part. With `tower_runs.pretraining: shared` every run fine-tunes from the same pretrained
towers, so that part is fine-tuning's alone, and its ratio to the variance of a study with a pretraining per run
(`--reference`, points²) is f, fine-tuning's share of the towers' variance.

    python benchmarks/tower_variance.py --reports reports/confirm --reference 2.9
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def seeds_part(variants: list[dict[str, Any]]) -> float:
    """What localizer seeds add to the variance of one run's difference (points²): each side's seed variance over
    its S seeds (run 0's), both sides summed."""
    return float(sum(100**2 * np.var(v["test_accuracy"]["per_seed"], ddof=1) / len(v["test_accuracy"]["per_seed"])
                     for v in variants))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=Path, default=Path("reports/confirm"), help="the tower-run study's reports")
    ap.add_argument("--reference", type=float, default=2.9,
                    help="towers' variance of the same difference with a pretraining per run, points² (default: %(default)s)")
    args = ap.parse_args()
    axis = json.loads((args.reports / "ablation_encoder.json").read_text())
    frozen = next(v for v in axis["variants"] if not v["is_full_model"])
    per_run = -100 * np.asarray(frozen["vs_reference"]["per_tower_run"])  # full − frozen, points
    total = float(per_run.var(ddof=1))
    towers = max(0.0, total - seeds_part(axis["variants"]))
    print(f"{len(per_run)} tower runs; full − frozen per run (points): " + ", ".join(f"{d:+.2f}" for d in per_run))
    print(f"variance over the runs: {total:.2f} points²; less the seeds' part: {towers:.2f} points² (the towers')")
    print(f"f = {towers / args.reference:.2f} of the reference's {args.reference:.2f} points² (a pretraining per run)")


if __name__ == "__main__":
    main()
