"""Result tables: our runs vs baselines vs published numbers, each row labelled with its dataset;
and the README's results block, generated from reports/*.json so no hand-copied number goes stale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from avelib.eval.claims import FULL_MODEL, FULL_ROW, ci_text, versus_cells
from avelib.eval.loaders import (load_ablations, load_baselines, load_metrics, main_table_runs, stage_a_text,
                                 tower_runs_text)
from avelib.eval.peer import PEER_CAPTION, PEER_HEADER, peer_rows
from avelib.eval.tasks import (COMPARISON_HEADER, CROSSMODAL_HEADER, WEAK_HEADER, comparison_cells, crossmodal_rows,
                               weak_rows)
from avelib.io import atomic_path, read_json

AVE_TEST = "AVE test (402 videos)"

# Supervised AVE segment accuracy (%) as published (spec/ave-clip.md); never our measurements. Each row
# names where the number was read; "not confirmed" marks a number no source read here shows. Every
# peer selects its epoch on the test split and reports one seed (read in their training code).
PEERS = "peer protocol: epoch chosen on the test split, one seed"
PUBLISHED: tuple[dict[str, Any], ...] = (
    {"method": "AVEL (A+V-att)", "venue": "ECCV'18", "accuracy": 72.7, "features": "VGG19 + VGGish", "dataset": AVE_TEST,
     "note": f"source: AVE-ECCV18 issue #18 (the author does not dispute it); {PEERS}"},
    {"method": "CMRAN", "venue": "MM'20", "accuracy": 77.4, "features": "VGG19 + VGGish", "dataset": AVE_TEST,
     "note": f"not confirmed: no source read here; {PEERS}"},
    {"method": "PSP", "venue": "CVPR'21", "accuracy": 77.8, "features": "VGG19 + VGGish", "dataset": AVE_TEST,
     "note": f"source: the PSP README; {PEERS}"},
    {"method": "CMBS", "venue": "CVPR'22", "accuracy": 79.3, "features": "VGG19 + VGGish", "dataset": AVE_TEST,
     "note": f"not confirmed: no source read here; {PEERS}"},
    {"method": "LAVisH", "venue": "CVPR'23", "accuracy": 81.1, "features": "Swin-V2-L", "dataset": AVE_TEST,
     "note": f"source: LAVISH issue #2; {PEERS}"},
    {"method": "DG-SCT", "venue": "NeurIPS'23", "accuracy": 82.18, "features": "Swin-V2-L + HTS-AT", "dataset": AVE_TEST,
     "note": f"source: the name of its released checkpoint, best_82.18.pt; {PEERS}"},
    {"method": "AVE-CLIP", "venue": "WACV'23", "accuracy": 83.7, "features": "AudioCLIP, fine-tuned", "dataset": AVE_TEST,
     "note": "not confirmed from the paper body: its abstract claims +5.9 points over the state of the art, "
             "and 83.7 - 5.9 = 77.8 is PSP's number"},
)

# Weakly supervised: the numbers a source shows; "not available" where no source was read.
NOT_READ = "not available: no source of this number was read here"
PUBLISHED_WEAK: tuple[dict[str, Any], ...] = (
    {"method": "AVEL (W-A+V-att)", "venue": "ECCV'18", "accuracy": None, "features": "VGG19 + VGGish",
     "dataset": AVE_TEST, "note": f"weakly supervised table of Tian et al.; {NOT_READ}"},
    {"method": "PSP", "venue": "CVPR'21", "accuracy": 73.5, "features": "VGG19 + VGGish",
     "dataset": AVE_TEST, "note": f"source: the PSP README; {PEERS}"},
    {"method": "CMBS", "venue": "CVPR'22", "accuracy": 74.2, "features": "VGG19 + VGGish",
     "dataset": AVE_TEST, "note": f"source: the maintainer in CMBS issue #1; {PEERS}"},
)
PUBLISHED_CROSSMODAL: tuple[dict[str, Any], ...] = (
    {"method": "AVDLN", "venue": "ECCV'18", "a2v": None, "v2a": None, "features": "VGG19 + VGGish",
     "dataset": AVE_TEST, "note": f"cross-modality localization table of Tian et al.; {NOT_READ}"},
    {"method": "DCCA (as run by AVEL)", "venue": "ECCV'18", "a2v": None, "v2a": None, "features": "VGG19 + VGGish",
     "dataset": AVE_TEST, "note": f"cross-modality localization table of Tian et al.; {NOT_READ}"},
)

COLUMNS = ["source", "method", "dataset", "features", "accuracy", "std", "no_postprocess", "seeds"]


def results_table(
    ours: Mapping[str, Mapping[str, Any]],
    features: Mapping[str, str] | None = None,
    include_published: bool = True,
) -> pd.DataFrame:
    """One row per run of ours (name -> metrics dict of train_seeds), then the published rows.

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


# ---------------------------------------------------------------- README results block

README_BEGIN = "<!-- results:begin (generated by `python -m avelib readme-tables` from reports/*.json; do not edit) -->"
README_END = "<!-- results:end -->"


def _pct(stat: Mapping[str, Any] | None) -> str:
    if not stat:
        return "—"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def readme_results(reports: str | Path) -> str:
    """The README's results tables (markdown) from `reports/{metrics,baselines,ablations}.json`."""
    reports = Path(reports)
    main = load_metrics(reports / "metrics.json")
    seeds, videos = main["test_accuracy_ci"]["seeds"], main["test_accuracy_ci"]["videos"]
    head = ["test acc. % (mean ± std)", "95 % CI", "full − this, points [95 % CI]", "p", "verdict", "val acc. %"]
    rows = [[f"**{FULL_MODEL}**", _pct(main["test_accuracy"]), ci_text(main), *FULL_ROW,
             _pct(main.get("val_accuracy"))]]
    for name, b in load_baselines(reports / "baselines.json").items():
        label = str(b.get("label") or name)
        rows.append([label, _pct(b["test_accuracy"]), ci_text(b), *versus_cells("baselines", label, b), _pct(b.get("val_accuracy"))])
    lines = [f"{main['dataset']} test split: {videos} videos, {seeds} seeds. Paired differences on the same "
             "videos; CIs by a crossed bootstrap over test videos and seeds (avelib.eval.stats).", ""]
    lines += _markdown(["run", *head], rows) + [""]
    peer = peer_rows(main_table_runs(reports))
    if peer:
        lines += [PEER_CAPTION, ""] + _markdown(PEER_HEADER, peer) + [""]
    ablation_rows = []
    for axis, variants in load_ablations(reports / "ablations.json").items():
        for v in variants:
            versus = FULL_ROW if v.get("is_full_model") else versus_cells(axis, v["name"], v)
            ablation_rows.append([axis, v["name"], _pct(v["test_accuracy"]), ci_text(v), *versus, _pct(v.get("val_accuracy"))])
    lines += _markdown(["ablation", "variant", *head], ablation_rows)
    if (reports / "finetune.json").is_file():
        lines += ["", "Stage A (contrastive fine-tuning): " + stage_a_text(read_json(reports / "finetune.json"))]
    if (reports / "tower_runs.json").is_file():
        lines += ["", tower_runs_text(read_json(reports / "tower_runs.json"))]
    return "\n".join(lines + _task_lines(reports)) + "\n"


def _comparison_rows(comparisons: Sequence[Mapping[str, Any]]) -> list[str]:
    return _markdown(COMPARISON_HEADER, [comparison_cells(c) for c in comparisons])


def _task_lines(reports: Path) -> list[str]:
    """The weak and cross-modal tables (reports/weak.json, reports/crossmodal.json), where they exist."""
    lines: list[str] = []
    if (reports / "weak.json").is_file():
        weak = read_json(reports / "weak.json")
        lines += ["", f"Weakly supervised ({weak['dataset']}, video-level labels only): test segment accuracy.", ""]
        lines += _markdown(WEAK_HEADER, weak_rows(weak))
        lines += [""] + _comparison_rows(weak["comparisons"])
    if (reports / "crossmodal.json").is_file():
        cm = read_json(reports / "crossmodal.json")
        lines += ["", f"Cross-modality localization ({cm['dataset']}): exact-start accuracy.", ""]
        lines += _markdown(CROSSMODAL_HEADER, crossmodal_rows(cm))
        lines += [""] + _comparison_rows(cm["comparisons"])
    return lines


def sync_readme(readme: str | Path, reports: str | Path, check: bool = False) -> bool:
    """Put `readme_results(reports)` between the README's markers; True when it was already current.

    `check`: only compare (nothing written). Raises naming the file when a marker is missing.
    """
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1:
        raise ValueError(f"{readme}: needs exactly one line {README_BEGIN!r} and one {README_END!r}")
    before, rest = text.split(README_BEGIN)
    current, after = rest.split(README_END)
    block = "\n" + readme_results(reports)
    if current == block:
        return True
    if not check:
        with atomic_path(readme) as tmp:
            tmp.write_text(before + README_BEGIN + block + README_END + after, encoding="utf-8")
    return False
