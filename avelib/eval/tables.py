"""Result tables: our runs vs baselines vs published numbers, each row labelled with its dataset;
and the results blocks of README.md (headline and main table) and docs/results.md (every table), generated from
reports/*.json so no hand-copied number goes stale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from avelib.eval.claims import (FULL_MODEL, FULL_ROW, baseline_comparisons, ci_text, difference_text, interval_text,
                                 versus_cells)
from avelib.eval.loaders import (load_ablations, load_baselines, load_metrics, main_table_runs, stage_a_text,
                                 tower_runs_text)
from avelib.eval.peer import PEER_CAPTION, PEER_HEADER, peer_rows
from avelib.eval.tasks import (COMPARISON_HEADER, CROSSMODAL_HEADER, DIRECTIONS, ENCODER_LABELS, WEAK_HEADER,
                               comparison_cells, crossmodal_rows, weak_rows)
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


# ---------------------------------------------------------------- README and docs/results.md blocks

README_BEGIN = "<!-- results:begin (generated by `python -m avelib readme-tables` from reports/*.json; do not edit) -->"
README_END = "<!-- results:end -->"
RESULTS_PAGE = Path("docs/results.md")  # the full tables; the README keeps the headline and the main table
CONFIRM = "confirm"  # the tower-run study's result files, reports/confirm/ (`make confirm`)
CI_TEXT = "95 % CI"


def _pct(stat: Mapping[str, Any] | None) -> str:
    if not stat:
        return "—"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _acc(mean: float, ci: Sequence[float] | None) -> str:
    """'80.25 % [76.15, 84.08]' of fractions."""
    return f"{100 * mean:.2f} %" + (f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci else "")


def _short(label: str) -> str:
    """'AVE-CLIP, weak (fine-tuned towers)' -> 'weak AVE-CLIP' (the towers are named once per sentence)."""
    name, _, kind = label.split(" (")[0].partition(", ")
    return f"{kind} {name}" if kind else name


def _versus(c: Mapping[str, Any], side: str, other: str, mine: str) -> str:
    """'<side> − <other> +3.89 points [-0.29, +8.01] (not resolved)' of a named comparison, turned so that `side`
    comes first; the verdict names the higher side."""
    flip = c["a"] != side
    diff = -c["difference"] if flip else c["difference"]
    lo, hi = (-c["ci"][1], -c["ci"][0]) if flip else c["ci"]
    winner = {"a": c["a"], "b": c["b"]}.get(c["verdict"])
    said = f"resolved: {mine if winner == side else other} higher" if winner else c["verdict"]
    return f"{mine} − {other} {interval_text(diff, (lo, hi), c.get('tower_runs'))} points ({said})"


def _lead(main: Mapping[str, Any]) -> str:
    ci = main["test_accuracy_ci"]
    return (f"**{main['dataset']}**, quick study (`make repro`): {ci['videos']} test videos, {ci['seeds']} training "
            f"seeds. Brackets hold {CI_TEXT}s, which resample test videos and seeds; a comparison is resolved only "
            "where its CI excludes zero. These are not AVE numbers: do not compare them with published ones.")


def _supervised_line(reports: Path, main: Mapping[str, Any]) -> str:
    versus = []
    for c in baseline_comparisons(load_baselines(reports / "baselines.json")):
        said = c.verdict.replace(FULL_MODEL if FULL_MODEL in c.verdict else "full model", "AVE-CLIP")
        versus.append(f"AVE-CLIP − {c.other} {difference_text(c)} points ({said})")
    return (f"- **Supervised localization:** AVE-CLIP {_acc(main['test_accuracy']['mean'], main['test_accuracy_ci']['ci'])}"
            f" test segment accuracy; " + "; ".join(versus) + ".")


def _weak_line(weak: Mapping[str, Any]) -> str | None:
    runs = {(r["model"], r["encoder"]): r for r in weak["runs"]}
    key = next((k for k in (("aveclip", "finetuned"), ("aveclip", "release")) if k in runs), None)
    if key is None:
        return None
    run = runs[key]
    label, mine = run["label"], _short(run["label"])
    versus = [_versus(c, label, _short(c["b"] if c["a"] == label else c["a"]), mine) for c in weak["comparisons"]
              if label in (c["a"], c["b"]) and not c.get("tower_runs")]
    return (f"- **Weakly supervised** (video-level labels only, {ENCODER_LABELS.get(key[1], key[1])}): {mine} "
            f"{_acc(run['test_accuracy']['mean'], run['test_accuracy_ci']['ci'])}; " + "; ".join(versus) + ".")


def _crossmodal_line(cm: Mapping[str, Any]) -> str | None:
    enc = next((e for e in ("finetuned", "release") if e in cm["encoders"]), None)
    res = cm["encoders"].get(enc) if enc else None
    if not res or not res.get("learned") or not res.get("chance"):
        return None
    named = {(c["a"], c["b"]): c for c in cm["comparisons"]}
    accs, versus = [], []
    for d in DIRECTIONS:
        r = res["learned"][d]
        accs.append(f"{d.upper()} {_acc(r['accuracy']['mean'], r['ci'])}")
        c = named.get((f"{d.upper()} learned ({enc})", "chance"))
        if c:
            versus.append(_versus(c, c["a"], "chance", f"{d.upper()} learned"))
    return (f"- **Cross-modal localization** (A2V and V2A, exact start; {res['videos']} test videos with a 1–9 s event, "
            f"{ENCODER_LABELS.get(enc, enc)}): the learned distance reads " + ", ".join(accs)
            + f" against an exact chance of {100 * res['chance']['accuracy']:.2f} %; " + "; ".join(versus) + ".")


def headline_lines(reports: str | Path) -> list[str]:
    """One sentence per task with its CI and verdict, from reports/{metrics,baselines,weak,crossmodal}.json."""
    reports = Path(reports)
    main = load_metrics(reports / "metrics.json")
    lines = [_lead(main), "", _supervised_line(reports, main)]
    for name, line in (("weak", _weak_line), ("crossmodal", _crossmodal_line)):
        path = reports / f"{name}.json"
        said = line(read_json(path)) if path.is_file() else None
        lines.append(said or f"- not available: {path.name} is missing or holds no AVE-CLIP run on the main features.")
    return lines


def _main_table(reports: Path, main: Mapping[str, Any]) -> list[str]:
    head = ["test acc. % (mean ± std)", CI_TEXT, "full − this, points [95 % CI]", "p", "verdict", "val acc. %"]
    rows = [[f"**{FULL_MODEL}**", _pct(main["test_accuracy"]), ci_text(main), *FULL_ROW,
             _pct(main.get("val_accuracy"))]]
    for name, b in load_baselines(reports / "baselines.json").items():
        label = str(b.get("label") or name)
        rows.append([label, _pct(b["test_accuracy"]), ci_text(b), *versus_cells("baselines", label, b), _pct(b.get("val_accuracy"))])
    return _markdown(["run", *head], rows)


def readme_results(reports: str | Path) -> str:
    """The README's block: one headline sentence per task, then the main table (the quick study's reports/)."""
    reports = Path(reports)
    main = load_metrics(reports / "metrics.json")
    lines = headline_lines(reports) + [""] + _main_table(reports, main)
    lines += ["", f"Every other table (peer protocol, ablations, stage A, weak, cross-modal, the tower-run study): "
                  f"[{RESULTS_PAGE.as_posix()}]({RESULTS_PAGE.as_posix()})."]
    return "\n".join(lines) + "\n"


def results_page(reports: str | Path) -> str:
    """docs/results.md's block: every results table of the quick study (reports/) and of the tower-run study
    (reports/confirm/, where `make confirm` has written it)."""
    reports = Path(reports)
    main = load_metrics(reports / "metrics.json")
    seeds, videos = main["test_accuracy_ci"]["seeds"], main["test_accuracy_ci"]["videos"]
    lines = ["### Quick study (`make repro`, reports/)", "",
             f"{main['dataset']} test split: {videos} videos, {seeds} seeds. Paired differences on the same "
             "videos; CIs by a crossed bootstrap over test videos and seeds (avelib.eval.stats).", ""]
    lines += _main_table(reports, main) + [""]
    peer = peer_rows(main_table_runs(reports))
    if peer:
        lines += [PEER_CAPTION, ""] + _markdown(PEER_HEADER, peer) + [""]
    lines += _ablation_table(load_ablations(reports / "ablations.json"))
    if (reports / "finetune.json").is_file():
        lines += ["", "Stage A (contrastive fine-tuning): " + stage_a_text(read_json(reports / "finetune.json"))]
    lines += _task_lines(reports)
    lines += ["", "### Tower-run study (`make confirm`, reports/confirm/)", ""] + _confirm_lines(reports / CONFIRM)
    return "\n".join(lines) + "\n"


def _ablation_table(axes: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    head = ["test acc. % (mean ± std)", CI_TEXT, "full − this, points [95 % CI]", "p", "verdict", "val acc. %"]
    rows = []
    for axis, variants in axes.items():
        for v in variants:
            versus = FULL_ROW if v.get("is_full_model") else versus_cells(axis, v["name"], v)
            rows.append([axis, v["name"], _pct(v["test_accuracy"]), ci_text(v), *versus, _pct(v.get("val_accuracy"))])
    return _markdown(["ablation", "variant", *head], rows)


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


def _not_in_quick(study: Mapping[str, Any], quick: Path) -> list[Mapping[str, Any]]:
    """The tower-run study's comparisons that the quick study's file (`quick`) does not have: those between tower
    sets and those on the frozen towers, which only the tower-run study trains."""
    have = {(c["a"], c["b"]) for c in read_json(quick)["comparisons"]} if quick.is_file() else set()
    return [c for c in study["comparisons"] if c.get("tower_runs", 1) > 1 or (c["a"], c["b"]) not in have]


def _confirm_lines(folder: Path) -> list[str]:
    """The tower-run study: the recipe grid, stage A per tower run, and every comparison between tower sets."""
    def missing(name: str) -> list[str]:
        return [f"not available: reports/{CONFIRM}/{name} missing; `make confirm` writes it.", ""]

    lines: list[str] = []
    for name, text in (("recipe_grid.json", lambda s: "Stage A's recipe grid: " + stage_a_text(s)),
                       ("tower_runs.json", tower_runs_text)):
        lines += [text(read_json(folder / name)), ""] if (folder / name).is_file() else missing(name)
    if (folder / "ablation_encoder.json").is_file():
        lines += ["The `encoder` axis over the tower runs:", ""]
        lines += _ablation_table(load_ablations(folder / "ablation_encoder.json")) + [""]
    else:
        lines += missing("ablation_encoder.json")
    for name, caption in (("weak.json", "Weakly supervised: fine-tuned against frozen towers, and the runs on frozen towers:"),
                          ("crossmodal.json", "Cross-modality: the comparisons between tower sets, and those on frozen towers:")):
        if not (folder / name).is_file():
            lines += missing(name)
            continue
        lines += [caption, ""] + _comparison_rows(_not_in_quick(read_json(folder / name), folder.parent / name)) + [""]
    return lines[:-1]


def _sync_block(path: Path, block: str, check: bool) -> bool:
    """Put `block` between the markers of `path`; True when it was already current (`check`: write nothing)."""
    text = path.read_text(encoding="utf-8")
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1:
        raise ValueError(f"{path}: needs exactly one line {README_BEGIN!r} and one {README_END!r}")
    before, rest = text.split(README_BEGIN)
    current, after = rest.split(README_END)
    if current == block:
        return True
    if not check:
        with atomic_path(path) as tmp:
            tmp.write_text(before + README_BEGIN + block + README_END + after, encoding="utf-8")
    return False


def sync_readme(readme: str | Path, reports: str | Path, check: bool = False) -> bool:
    """Put `readme_results(reports)` between the README's markers; True when it was already current.

    `check`: only compare (nothing written). Raises naming the file when a marker is missing.
    """
    return _sync_block(Path(readme), "\n" + readme_results(reports), check)


def sync_results_page(page: str | Path, reports: str | Path, check: bool = False) -> bool:
    """Put `results_page(reports)` between the markers of docs/results.md; True when it was already current."""
    return _sync_block(Path(page), "\n" + results_page(reports), check)
