"""The result files of the other two AVE tasks: `reports/weak.json` and `reports/crossmodal.json`.

Each holds the runs' accuracies with their 95 % CIs and the paired differences that matter, every one
as `a - b` on the same test videos (avelib.eval.stats.paired_difference, verdict "a" / "b" / "not
resolved"). Published numbers of both tasks could not be confirmed here (avelib.eval.tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from avelib.eval import crossmodal as X
from avelib.eval.claims import interval_text, p_text
from avelib.eval.stats import compare_runs, compare_tower_runs, tower_difference

MODEL_LABELS = {"aveclip": "AVE-CLIP", "avel": "AVEL", "mlp": "per-second MLP"}
ENCODER_LABELS = {"finetuned": "fine-tuned towers", "frozen": "frozen towers", "release": "release features"}
DIRECTIONS = ("a2v", "v2a")


def verdict_text(comparison: Mapping[str, Any]) -> str:
    """'resolved: <a> higher' / 'resolved: <b> higher' / 'not resolved' of a named paired comparison."""
    c = comparison
    return {"a": f"resolved: {c['a']} higher", "b": f"resolved: {c['b']} higher"}.get(c["verdict"], c["verdict"])


COMPARISON_HEADER = ["a", "b", "a − b, points [95 % CI]", "p", "verdict"]


def comparison_cells(c: Mapping[str, Any]) -> list[str]:
    """One row under COMPARISON_HEADER."""
    return [c["a"], c["b"], interval_text(c["difference"], c["ci"], c.get("tower_runs")), p_text(c["p_value"]),
            verdict_text(c)]


def weak_label(model: str, encoder: str) -> str:
    return f"{MODEL_LABELS.get(model, model)}, weak ({ENCODER_LABELS.get(encoder, encoder)})"


def _tower_run_count(tower_runs: Mapping[Any, list[Any]] | None) -> int:
    """Tower runs behind a summary: run 0 and the most runs 1.. any key has."""
    return 1 + max((len(r) for r in (tower_runs or {}).values()), default=0)


def _named(a: str, b: str, diff: Mapping[str, Any]) -> dict[str, Any]:
    return {"a": a, "b": b, **diff}


def weak_comparisons(runs: Mapping[tuple[str, str], Mapping[str, Any]], supervised: Mapping[str, Any] | None,
                     tower_runs: Mapping[tuple[str, str], list[Mapping[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Supervised vs weak AVE-CLIP (on the main run's features: fine-tuned towers, or the release's), weak
    AVE-CLIP vs each weak baseline per encoder, and fine-tuned vs frozen towers per model across the tower
    runs (`runs`: run 0's, `tower_runs`: runs 1.. of each key); only the pairs whose runs exist."""
    out = []
    main = next((e for e in ("finetuned", "release") if ("aveclip", e) in runs), None)
    if supervised is not None and main is not None:
        out.append(_named(f"AVE-CLIP, supervised ({ENCODER_LABELS[main]})", weak_label("aveclip", main),
                          compare_runs(supervised, runs[("aveclip", main)])))
    encoders = sorted({e for _, e in runs}, key=list(ENCODER_LABELS).index)
    for enc in encoders:
        for other in ("avel", "mlp"):
            if ("aveclip", enc) in runs and (other, enc) in runs:
                out.append(_named(weak_label("aveclip", enc), weak_label(other, enc),
                                  compare_runs(runs[("aveclip", enc)], runs[(other, enc)])))
    for model in MODEL_LABELS:
        if (model, "finetuned") in runs and (model, "frozen") in runs:
            a, b = ([runs[(model, e)], *(tower_runs or {}).get((model, e), [])] for e in ("finetuned", "frozen"))
            out.append(_named(weak_label(model, "finetuned"), weak_label(model, "frozen"), compare_tower_runs(a, b)))
    return out


def weak_summary(runs: Mapping[tuple[str, str], Mapping[str, Any]], supervised: Mapping[str, Any] | None,
                 dataset: str, protocol: str,
                 tower_runs: Mapping[tuple[str, str], list[Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """`reports/weak.json` from the runs keyed (model, encoder) (avelib.train.weak.train_weak_seeds) of tower run 0;
    `tower_runs`: those of runs 1.., read by the comparisons between tower sets and `across_tower_runs` (each
    run's test accuracy, run 0 first: the spread another machine's run 0 is held to, avelib.eval.compare)."""
    rows = [{"label": weak_label(m, e), "model": m, "encoder": e, "dataset": dataset,
             **{k: run[k] for k in ("test_accuracy", "test_accuracy_ci", "test_accuracy_fixed", "test_accuracy_fixed_ci",
                                    "test_accuracy_argmax", "test_accuracy_argmax_ci",
                                    "val_accuracy", "test_video_accuracy", "chosen_threshold", "best_epoch", "pool",
                                    "seeds", "test_correct_seconds")}}
            for (m, e), run in runs.items()]
    example = next((run["example"] for (m, e), run in runs.items() if m == "aveclip"), None)
    across = {f"{m}_{e}": [r["test_accuracy"]["mean"] for r in [run, *more]]
              for (m, e), run in runs.items() if (more := (tower_runs or {}).get((m, e)))}
    return {"dataset": dataset, "protocol": protocol, "runs": rows, "across_tower_runs": across,
            "supervised": ({"test_accuracy": supervised["test_accuracy"], "test_accuracy_ci": supervised["test_accuracy_ci"]}
                           if supervised is not None else None),
            "comparisons": weak_comparisons(runs, supervised, tower_runs), "example": example,
            "tower_runs": _tower_run_count(tower_runs)}


def crossmodal_comparisons(by_encoder: Mapping[str, Mapping[str, Any]],
                           tower_runs: Mapping[str, list[Mapping[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Per direction: each method vs chance, and across the tower runs (`by_encoder`: run 0's, `tower_runs`: runs
    1.. of each encoder) learned vs zero-shot and fine-tuned vs frozen towers (zero-shot)."""
    out = []
    every = {enc: [res, *(tower_runs or {}).get(enc, [])] for enc, res in by_encoder.items()}

    def across(runs_a: list[Mapping[str, Any]], method_a: str, runs_b: list[Mapping[str, Any]], method_b: str,
               d: str) -> dict[str, Any]:
        return tower_difference([r[method_a][d]["correct"] for r in runs_a], [r[method_b][d]["correct"] for r in runs_b])

    for d in DIRECTIONS:
        for enc, res in by_encoder.items():
            if not res["videos"]:
                continue
            chance = np.asarray(res["chance"]["per_video"])
            for method in ("zero_shot", "learned"):
                if res[method] is not None:
                    out.append(_named(f"{d.upper()} {method} ({enc})", "chance", X.versus(res[method][d], chance)))
            if res["zero_shot"] is not None:  # features trained on vs the towers' own embedding
                out.append(_named(f"{d.upper()} learned ({enc})", f"{d.upper()} zero_shot ({enc})",
                                  across(every[enc], "learned", every[enc], "zero_shot", d)))
        fine, frozen = by_encoder.get("finetuned"), by_encoder.get("frozen")
        if fine and frozen and fine["zero_shot"] is not None and frozen["zero_shot"] is not None:
            out.append(_named(f"{d.upper()} zero_shot (finetuned)", f"{d.upper()} zero_shot (frozen)",
                              across(every["finetuned"], "zero_shot", every["frozen"], "zero_shot", d)))
    return out


def crossmodal_summary(by_encoder: Mapping[str, Mapping[str, Any]], dataset: str, seeds: list[int],
                       tower_runs: Mapping[str, list[Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """`reports/crossmodal.json` from avelib.train.distance.crossmodal_runs per encoder of tower run 0; `tower_runs`:
    those of runs 1.., which only the comparisons across tower runs read."""
    return {"dataset": dataset, "seeds": seeds, "encoders": dict(by_encoder),
            "comparisons": crossmodal_comparisons(by_encoder, tower_runs),
            "across_tower_runs": _crossmodal_across(by_encoder, tower_runs), "tower_runs": _tower_run_count(tower_runs)}


def _crossmodal_across(by_encoder: Mapping[str, Mapping[str, Any]],
                       tower_runs: Mapping[str, list[Mapping[str, Any]]] | None) -> dict[str, dict[str, list[float]]]:
    """Each method's accuracy per direction on every tower run, run 0 first: {encoder: {method_dir: [...]}}."""
    out: dict[str, dict[str, list[float]]] = {}
    for enc, res in by_encoder.items():
        every = [res, *(tower_runs or {}).get(enc, [])]
        if len(every) < 2 or not res["videos"]:
            continue
        out[enc] = {f"{method}_{d}": [r[method][d]["accuracy"]["mean"] for r in every]
                    for method in ("zero_shot", "learned") if res[method] is not None for d in DIRECTIONS}
    return out


def pct_text(stat: Mapping[str, Any] | None) -> str:
    """'83.10 ± 1.20' (%) of a {mean, std} fraction summary; '—' without one."""
    return "—" if not stat else f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def ci_percent(ci: Any) -> str:
    """'[81.00, 85.20]' (%) of a [lo, hi] fraction interval; '—' without one."""
    return "—" if ci is None else f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


# One row builder per result file; the notebook (pandas), README (Markdown) and report (HTML) tables
# are formatters of these rows.
WEAK_HEADER = ["run", "test acc. (%)", "95 % CI", "fixed 0.5: test acc. (%)", "95 % CI",
               "AVEL's rule, argmax: test acc. (%)", "95 % CI", "val acc. (%)", "video acc. (%)"]
CROSSMODAL_HEADER = ["method (towers)", "A2V acc. (%)", "95 % CI", "V2A acc. (%)", "95 % CI"]


def weak_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Rows under WEAK_HEADER: the supervised reference (where present), then every weak run."""
    rows = []
    if summary.get("supervised"):
        s = summary["supervised"]
        rows.append(["AVE-CLIP, supervised (for reference)", pct_text(s["test_accuracy"]),
                     ci_percent(s["test_accuracy_ci"]["ci"]), *["—"] * (len(WEAK_HEADER) - 3)])
    for r in summary["runs"]:
        rows.append([r["label"], pct_text(r["test_accuracy"]), ci_percent(r["test_accuracy_ci"]["ci"]),
                     *(t for rule in ("fixed", "argmax") for t in (pct_text(r[f"test_accuracy_{rule}"]),
                                                                    ci_percent(r[f"test_accuracy_{rule}_ci"]["ci"]))),
                     pct_text(r["val_accuracy"]), pct_text(r["test_video_accuracy"])])
    return rows


def crossmodal_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Rows under CROSSMODAL_HEADER: each encoder's methods (or why one is missing), then its exact chance."""
    rows = []
    for enc, res in summary["encoders"].items():
        for method in ("zero_shot", "learned"):
            name = f"{method.replace('_', '-')} ({enc})"
            if res.get(method) is None:
                why = ("not available: no test video with a 1-9 s event" if not res["videos"]
                       else "not applicable: the two embeddings differ in size")
                rows.append([name, why, "—", "—", "—"])
                continue
            rows.append([name, *(t for d in DIRECTIONS for t in (pct_text(res[method][d]["accuracy"]),
                                                              ci_percent(res[method][d]["ci"])))])
        chance = chance_text(res)
        rows.append([f"chance, exact ({enc}, {res['videos']} test videos)", chance, "—", chance, "—"])
    return rows


def weak_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(weak_rows(summary), columns=WEAK_HEADER)


def crossmodal_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(crossmodal_rows(summary), columns=CROSSMODAL_HEADER)


def chance_text(res: Mapping[str, Any]) -> str:
    """The exact chance of one encoder's cross-modal result in %, or why there is none."""
    return f"{100 * res['chance']['accuracy']:.2f}" if res["chance"] else "not available: no test video with a 1-9 s event"


def comparisons_frame(comparisons: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Paired comparisons a − b in percentage points with CI, p and verdict."""
    return pd.DataFrame([comparison_cells(c) for c in comparisons], columns=COMPARISON_HEADER)
