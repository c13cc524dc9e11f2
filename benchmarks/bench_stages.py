"""Where the pipeline's time goes, and what a second process buys (prints figures; not a test).

`profile` prints the last run of every stage from reports/timings/ (written by the stage runner):
wall time, peak RSS and the time of each notebook cell, slowest first within a stage.
`ranks` reruns localizer stages on the pipeline's features with `distributed.localizer_nproc` 1 and
then 2 (torchrun, gloo on the CPU), each into a fresh temp dir, prints both wall times and their
ratio, and checks that both gave the same results (wall-clock fields aside).

    python benchmarks/bench_stages.py profile
    python benchmarks/bench_stages.py ranks --stages train evaluate weak
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

STAGES = ("train", "evaluate", "ablate", "weak")
TIME_KEYS = ("seconds", "train_seconds")


def profile(reports: Path, cells: int) -> None:
    files = sorted((reports / "timings").glob("*.json"))
    if not files:
        raise SystemExit(f"{reports / 'timings'}: no stage timings (run `make repro` first)")
    total = 0.0
    print(f"{'stage':<26} {'seconds':>9} {'peak RSS MiB':>13}   slowest cells")
    for path in files:
        t = json.loads(path.read_text())
        total += t["seconds"]
        slow = sorted(t.get("cells", []), key=lambda c: -c["seconds"])[:cells]
        print(f"{t['stage']:<26} {t['seconds']:>9.1f} {t['peak_rss_mib']:>13.0f}   "
              + "; ".join(f"{c['seconds']:.1f} s {c['cell']!r}" for c in slow))
    print(f"{'all stages':<26} {total:>9.1f}")


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in TIME_KEYS}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def _run(stage: str, params: dict, out: Path):
    from avelib.stages.localizer import run_ablation, run_evaluate, run_train
    from avelib.stages.tasks import run_weak

    if stage == "train":
        return run_train(params, "data/features/finetuned", out, progress=False)
    if stage == "evaluate":
        return run_evaluate(params, "data/features/finetuned", out, ("avel", "mlp"), progress=False)
    if stage == "ablate":
        return run_ablation(params, "refine", "data/features", "models/localizer/metrics.json", out, progress=False)
    return run_weak(params, "data/features", None, out, progress=False)


def ranks(stages: list[str]) -> None:
    from avelib.params import load_params

    params = load_params("params.yaml")
    rows = []
    for stage in stages:
        seconds, results = [], []
        for nproc in (1, 2):
            run = {**params, "distributed": {**params.get("distributed", {}), "localizer_nproc": nproc}}
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                results.append(_without_times(_run(stage, run, Path(tmp) / stage)))
                seconds.append(time.perf_counter() - t0)
        rows.append((stage, *seconds, results[0] == results[1]))
    print(f"\n{'stage':<10} {'1 process s':>12} {'2 processes s':>14} {'ratio':>7}  same results")
    for stage, one, two, same in rows:
        print(f"{stage:<10} {one:>12.1f} {two:>14.1f} {one / two:>7.2f}  {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("profile", help="per-stage and per-cell times of the last run")
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--cells", type=int, default=3, help="slowest cells shown per stage")
    r = sub.add_parser("ranks", help="1 vs 2 torchrun processes on the localizer stages")
    r.add_argument("--stages", nargs="+", default=["train", "evaluate"], choices=STAGES)
    args = ap.parse_args()
    if args.what == "profile":
        profile(args.reports, args.cells)
    else:
        ranks(args.stages)


if __name__ == "__main__":
    main()
