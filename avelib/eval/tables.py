"""Result tables: our runs vs baselines vs published numbers, each row labelled with its dataset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

AVE_TEST = "AVE test (402 videos)"

# Supervised AVE segment accuracy (%) as published (spec/ave-clip.md); never our measurements.
PUBLISHED: tuple[dict[str, Any], ...] = (
    {"method": "AVEL (A+V-att)", "venue": "ECCV'18", "accuracy": 72.7, "features": "VGG19 + VGGish", "dataset": AVE_TEST},
    {"method": "CMRAN", "venue": "MM'20", "accuracy": 77.4, "features": "VGG19 + VGGish", "dataset": AVE_TEST},
    {"method": "PSP", "venue": "CVPR'21", "accuracy": 77.8, "features": "VGG19 + VGGish", "dataset": AVE_TEST},
    {"method": "CMBS", "venue": "CVPR'22", "accuracy": 79.3, "features": "VGG19 + VGGish", "dataset": AVE_TEST},
    {"method": "DG-SCT", "venue": "NeurIPS'23", "accuracy": 82.2, "features": "Swin-V2-L + HTS-AT", "dataset": AVE_TEST},
    {"method": "AVE-CLIP", "venue": "WACV'23", "accuracy": 83.7, "features": "AudioCLIP, fine-tuned", "dataset": AVE_TEST},
)

COLUMNS = ["source", "method", "dataset", "features", "accuracy", "std", "no_postprocess", "seeds"]


def results_table(
    ours: Mapping[str, Mapping[str, Any]],
    features: Mapping[str, str] | None = None,
    include_published: bool = True,
) -> pd.DataFrame:
    """One row per run of ours (name -> metrics dict of evaluate_seeds), then the published rows.

    Accuracies in %; our rows show mean, std over seeds and the accuracy without post-processing;
    published rows leave those "not available". Every row names its dataset, so numbers measured on
    different data (e.g. SynthAVE vs AVE) are never mistaken for one another.
    """
    rows = []
    for name, m in ours.items():
        rows.append({
            "source": "ours",
            "method": name,
            "dataset": m.get("dataset", "unknown"),
            "features": (features or {}).get(name, ""),
            "accuracy": round(100 * m["test_accuracy"]["mean"], 2),
            "std": round(100 * m["test_accuracy"]["std"], 2),
            "no_postprocess": round(100 * m["test_accuracy_no_postprocess"]["mean"], 2),
            "seeds": len(m["test_accuracy"]["per_seed"]),
        })
    if include_published:
        for p in PUBLISHED:
            rows.append({"source": f"published ({p['venue']})", "method": p["method"], "dataset": p["dataset"],
                         "features": p["features"], "accuracy": p["accuracy"], "std": "not available",
                         "no_postprocess": "not available", "seeds": "not available"})
    return pd.DataFrame(rows, columns=COLUMNS)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no optional dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"
