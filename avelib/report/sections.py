"""The sections of reports/index.html, each a list of blocks (avelib.report.blocks) built from the
result files; a missing file gives a "not available" note, a malformed one raises naming it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from avelib.eval.claims import FULL_ROW, ci_text, versus_cells
from avelib.eval.loaders import (ReportInputError, load_ablations, load_baselines, load_metrics, main_table_runs, read_mapping,
                                 stage_a_text)
from avelib.eval.peer import PEER_CAPTION, PEER_HEADER, peer_rows
from avelib.report import blocks as B
from avelib.report.blocks import Block

MAIN_CAPTION = (
    "Segment accuracy (29 classes, background counted), mean ± std over seeds; 95 % CI by a crossed bootstrap "
    "over test videos and seeds; differences paired on the same test videos, a claim counts as resolved only "
    "where its CI excludes zero. Rows of different datasets are not comparable with each other: published "
    "numbers are on the real AVE test set; ours are on the dataset named in each row."
)


def caption_from_name(path: Path) -> str:
    """'confusion_matrix_seed0.png' -> 'Confusion matrix seed0'."""
    words = path.stem.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def published_rows() -> list[dict[str, Any]]:
    """Published AVE results from `avelib.eval.tables.PUBLISHED` (the one source of truth).

    PUBLISHED: a sequence of entries (mappings or objects with attributes) with `method` and `accuracy`
    (segment accuracy; percent or fraction; None = not available) and optionally `features`, `dataset`
    (default "AVE"), `note`; or a mapping {method: entry}.
    """
    from avelib.eval.tables import PUBLISHED as published  # at call time: tests put a stand-in module in its place

    if isinstance(published, Mapping):
        return [_published_row(entry, method) for method, entry in published.items()]
    return [_published_row(entry) for entry in published]


def _published_row(entry: Any, method: str | None = None) -> dict[str, Any]:
    """One PUBLISHED entry as {method, accuracy (% or None), features, dataset, note}."""
    if isinstance(entry, (int, float)):  # {method: accuracy}
        entry = {"accuracy": entry}
    get = entry.get if isinstance(entry, Mapping) else lambda key, default=None: getattr(entry, key, default)
    method = method or get("method") or get("name")
    if not method:
        raise ReportInputError(f"avelib.eval.tables.PUBLISHED: entry {entry!r} has no method name")
    acc = get("accuracy", get("acc"))
    if acc is not None:
        acc = float(acc)
        acc = 100.0 * acc if acc <= 1.0 else acc  # AVE accuracies are 70-84 %: <= 1 can only be a fraction
    return {
        "method": str(method),
        "accuracy": acc,
        "features": str(get("features", "") or ""),
        "dataset": str(get("dataset", "AVE") or "AVE"),
        "note": str(get("note", "") or ""),
    }


def main_table(reports: Path) -> list[Block]:
    """Ours vs baselines vs published numbers, each row labelled with its dataset."""
    metrics_path, baselines_path = reports / "metrics.json", reports / "baselines.json"
    header = ["method", "dataset", "source", "test acc. (%)", "95 % CI", "full − this, points [95 % CI]", "p",
              "verdict", "test acc., no post-proc. (%)", "val acc. (%)"]
    rows: list[list[B.Cell]] = []
    notes: list[Block] = []
    dataset = "?"
    if metrics_path.is_file():
        m = load_metrics(metrics_path)
        dataset = m["dataset"]
        rows.append([B.cell("AVE-CLIP (ours)", bold=True), dataset, "this run", B.stat_cell(m.get("test_accuracy")),
                     ci_text(m), *FULL_ROW, B.stat_cell(m.get("test_accuracy_no_postprocess")),
                     B.stat_cell(m.get("val_accuracy"))])
    else:
        notes.append(B.missing(metrics_path))
    if baselines_path.is_file():
        for name, b in load_baselines(baselines_path).items():
            label = str(b.get("label") or name)
            rows.append([label, str(b.get("dataset", dataset)), "this run (baseline)", B.stat_cell(b.get("test_accuracy")),
                         ci_text(b), *versus_cells("baselines", label, b),
                         B.stat_cell(b.get("test_accuracy_no_postprocess")), B.stat_cell(b.get("val_accuracy"))])
    else:
        notes.append(B.missing(baselines_path))
    for p in published_rows():
        acc = "—" if p["accuracy"] is None else f"{p['accuracy']:.1f}"
        source = "published" + (f" ({p['note']})" if p["note"] else "")
        method = B.cell(p["method"], note=f"[{p['features']}]" if p["features"] else "")
        rows.append([method, p["dataset"], source, acc, "—", "—", "—", "—", "—", "—"])
    peer: list[Block] = []
    rows_peer = peer_rows(main_table_runs(metrics_path.parent))
    if rows_peer:
        peer = [B.text(PEER_CAPTION, "cap"), B.table(PEER_HEADER, rows_peer, id="peer-table")]
    return [B.text(MAIN_CAPTION, "cap"), *([B.table(header, rows, id="main-table")] if rows else []), *notes, *peer]


def ablation_table(variants: Sequence[Mapping[str, Any]]) -> Block:
    """The variants of one ablation axis: mean ± std in %, CI, paired difference to the full model."""
    rows = []
    for v in variants:
        overrides = ", ".join(f"{k}={v2}" for k, v2 in (v.get("params") or {}).items())
        versus = FULL_ROW if v.get("is_full_model") else versus_cells(str(v.get("axis", "")), v["name"], v)
        rows.append([v["name"], overrides or "—", B.stat_cell(v.get("test_accuracy")), ci_text(v), *versus,
                     B.stat_cell(v.get("test_accuracy_no_postprocess")), B.stat_cell(v.get("val_accuracy"))])
    header = ["variant", "overrides", "test acc. (%)", "95 % CI", "full − this, points [95 % CI]", "p", "verdict",
              "no post-proc. (%)", "val acc. (%)"]
    return B.table(header, rows)


def ablation_table_html(variants: Sequence[Mapping[str, Any]]) -> str:
    """`ablation_table` as HTML (the ablation notebooks display it)."""
    return B.render_block(ablation_table(variants))


def ablations(reports: Path) -> list[Block]:
    """One table (+ plot) per ablation axis."""
    from avelib.viz.report import ablation_figure, figure_to_data_uri

    path = reports / "ablations.json"
    if not path.is_file():
        return [B.missing(path)]
    out: list[Block] = []
    for axis, variants in load_ablations(path).items():
        fig = B.figure(figure_to_data_uri(ablation_figure(axis, variants)), f"Ablation {axis}: test accuracy")
        out += [B.heading(axis, f"ablation-{axis}"), B.group([ablation_table(variants), fig], "row")]
    return out or [B.na(f"{path}: no variants")]


def finetune(reports: Path) -> list[Block]:
    """Stage A (reports/finetune.json): the R@1 curve with its CI next to the start, and the verdict."""
    from avelib.viz.report import figure_to_data_uri
    from avelib.viz.training import plot_finetune_recall

    path = reports / "finetune.json"
    if not path.is_file():
        return [B.missing(path)]
    summary = read_mapping(path)
    try:
        line = stage_a_text(summary)
        fig = plot_finetune_recall(summary["epochs"], summary["kept_epoch"])
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"{path}: not a stage-A summary (avelib.eval.results.stage_summary): {err!r}") from None
    return [B.text(line), B.figure(figure_to_data_uri(fig), "Stage A: validation retrieval per epoch")]


def figures(reports: Path) -> list[Block]:
    """Every reports/figures/*.png, inlined, captioned from its file name."""
    from avelib.viz.report import file_to_data_uri

    folder = reports / "figures"
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not pngs:
        return [B.missing(folder / "*.png")]
    return [B.group([B.figure(file_to_data_uri(p), caption_from_name(p)) for p in pngs])]


def run_figures(reports: Path) -> list[Block]:
    """Training curves (metrics.json `history`) and the confusion matrix (`confusion_matrix`) of the main run."""
    import numpy as np

    from avelib.data.ave import NUM_CLASSES
    from avelib.viz.localizer import confusion_heatmap, training_curves
    from avelib.viz.report import figure_to_data_uri

    path = reports / "metrics.json"
    if not path.is_file():
        return [B.missing(path)]
    m = load_metrics(path)
    figs: list[Block] = []
    if m.get("history"):
        try:
            fig = training_curves(m["history"], [f"seed run {s}" for s in range(len(m["history"]))],
                                  title=f"AVE-CLIP on {m['dataset']}")
        except (KeyError, TypeError) as e:
            raise ReportInputError(f"{path}: 'history' must be a list (per seed) of lists of epoch records "
                                   f"with epoch, train_loss, val_accuracy: {e!r}") from None
        figs.append(B.figure(figure_to_data_uri(fig), "Training curves per seed (from metrics.json)"))
    if "confusion_matrix" in m:
        conf = np.asarray(m["confusion_matrix"])
        if conf.shape != (NUM_CLASSES, NUM_CLASSES):
            raise ReportInputError(f"{path}: 'confusion_matrix' must be {NUM_CLASSES}x{NUM_CLASSES}, got {conf.shape}")
        fig = confusion_heatmap(conf, title="Test confusion matrix (summed over seeds)")
        figs.append(B.figure(figure_to_data_uri(fig), "Confusion matrix, row-normalised (from metrics.json)"))
    return [B.group(figs)] if figs else [B.na(f"not available: {path} has no history / confusion_matrix")]


def plots(reports: Path) -> list[Block]:
    """Training curves and other DVC plots from reports/plots/*.csv|*.json, drawn and inlined."""
    from avelib.viz.report import figure_to_data_uri, plot_records, read_plot_table

    folder = reports / "plots"
    files = sorted([*folder.glob("*.csv"), *folder.glob("*.json")]) if folder.is_dir() else []
    if not files:
        return [B.missing(folder / "*.csv|*.json")]
    out: list[Block] = []
    for p in files:
        fig = plot_records(read_plot_table(p), caption_from_name(p))
        out.append(B.na(f"{p}: no numeric columns to draw") if fig is None
                   else B.figure(figure_to_data_uri(fig), f"{caption_from_name(p)} ({p.name})"))
    return [B.group(out)]


def notebooks(reports: Path, page: Path) -> list[Block]:
    """Relative links from `page` to every executed notebook's HTML under reports/html/."""
    folder = reports / "html"
    pages = sorted(folder.glob("*.html")) if folder.is_dir() else []
    if not pages:
        return [B.missing(folder / "*.html")]
    return [B.links((Path(os.path.relpath(p.resolve(), page.resolve().parent)).as_posix(), p.stem) for p in pages)]
