"""Where the pipeline's time goes, and what a second process buys (prints figures; not a test).

`profile` prints the last run of every stage from reports/timings/ (written by the stage runner):
wall time, peak RSS and the time of each notebook cell, slowest first within a stage.
`ranks` reruns stages on the pipeline's files with 1 and then 2 torchrun processes (gloo on the CPU;
`distributed.finetune_nproc`, `extract_nproc` or `localizer_nproc`), each into a fresh temp dir,
prints both wall times and their ratio, and compares the results: identical (wall-clock fields
aside; extract: the h5 bytes), or for finetune the largest relative difference of the epochs' losses.

    python benchmarks/bench_stages.py profile
    python benchmarks/bench_stages.py ranks --stages finetune extract train evaluate weak
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

STAGES = ("finetune", "extract", "train", "evaluate", "ablate", "weak")
NPROC_KEY = {"finetune": "finetune_nproc", "extract": "extract_nproc"}  # the others: localizer_nproc
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
    from avelib.stages.towers import run_extract, run_finetune
    from avelib.stages.weak import run_weak

    if stage == "finetune":  # the epochs' training losses
        result = run_finetune(params, params["data"]["cache_dir"], params["data"]["root"], out, progress=False)
        return [h["train_loss"] for h in result.history if h["epoch"] > 0]
    if stage == "extract":  # the fine-tuned towers; the result is the files' bytes
        run_extract(params, params["data"]["cache_dir"], "models/finetune/best.pt", out, progress=False)
        return {p.name: p.read_bytes() for p in sorted(out.glob("*.h5"))}
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
            key = NPROC_KEY.get(stage, "localizer_nproc")
            run = {**params, "distributed": {**params.get("distributed", {}), key: nproc}}
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                results.append(_without_times(_run(stage, run, Path(tmp) / stage)))
                seconds.append(time.perf_counter() - t0)
        rows.append((stage, *seconds, _agreement(stage, *results)))
    print(f"\n{'stage':<10} {'1 process s':>12} {'2 processes s':>14} {'ratio':>7}  results")
    for stage, one, two, agreement in rows:
        print(f"{stage:<10} {one:>12.1f} {two:>14.1f} {one / two:>7.2f}  {agreement}")


def _agreement(stage: str, one, two) -> str:
    if stage == "finetune":  # float sums in another order: the curves agree closely, not bit for bit
        return f"losses within {max(abs(b - a) / abs(a) for a, b in zip(one, two)):.2%} of each other"
    return "identical" if one == two else "DIFFERENT"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("profile", help="per-stage and per-cell times of the last run")
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--cells", type=int, default=3, help="slowest cells shown per stage")
    r = sub.add_parser("ranks", help="1 vs 2 torchrun processes on the tower and localizer stages")
    r.add_argument("--stages", nargs="+", default=["train", "evaluate"], choices=STAGES)
    args = ap.parse_args()
    if args.what == "profile":
        profile(args.reports, args.cells)
    else:
        ranks(args.stages)


if __name__ == "__main__":
    main()
