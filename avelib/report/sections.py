"""The sections of reports/index.html on the supervised task, each a list of blocks (avelib.report.blocks)
built from the result files: a missing result file gives a "not available" note, a figure section with
nothing to draw gives no blocks (the page leaves it out), a malformed file raises naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from avelib.eval.claims import FULL_MODEL, FULL_ROW, ci_text, versus_cells
from avelib.eval.loaders import (ReportInputError, load_ablations, load_baselines, load_metrics, main_table_runs, read_mapping,
                                 stage_a_text)
from avelib.eval.peer import PEER_CAPTION, PEER_HEADER, peer_rows
from avelib.report import blocks as B
from avelib.report.blocks import Block
from avelib.report.differences import SIGN, VIDEOS_SEEDS, resamples, verdict_cell

ACCURACY = "Segment accuracy (29 classes, background counted) after post-processing, mean ± std over seeds."
ABLATIONS_CAPTION = (f"Each variant changes one thing of the full model (the params it overrides, in words). {ACCURACY} "
                     "Differences are paired on the same test videos; a difference between tower sets (the encoder "
                     "axis) is taken over the tower runs the stage had. " + SIGN)
HISTORY_COLUMNS = {"seed", "epoch", "train_loss", "val_accuracy"}  # avelib.eval.results.write_history_csv


def caption_from_name(path: Path) -> str:
    """'confusion_matrix_seed0.png' -> 'Confusion matrix seed0'."""
    words = path.stem.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def _versus(group: str, name: str, run: Mapping[str, Any]) -> list[B.Cell]:
    """The comparison cells of a row; a difference between tower sets says that its CI resamples the runs."""
    difference, p, verdict = versus_cells(group, name, run)
    towers = (run.get("vs_reference") or {}).get("tower_runs")
    return [B.cell(difference, note=f"(CI over {resamples(towers)})" if towers else ""), p, verdict_cell(verdict)]


MAIN_HEADER = ["run", "test acc. (%)", "95 % CI", "AVE-CLIP − this, points [95 % CI]", "p", "verdict",
               "no post-proc. (%)", "val acc. (%)"]


def main_table(reports: Path) -> list[Block]:
    """This run: AVE-CLIP and the baselines, on the dataset metrics.json names."""
    metrics_path, baselines_path = reports / "metrics.json", reports / "baselines.json"
    notes = [B.missing(p) for p in (metrics_path, baselines_path) if not p.is_file()]
    if not metrics_path.is_file():
        return notes
    m = load_metrics(metrics_path)
    rows: list[list[B.Cell]] = [[B.cell(FULL_MODEL, bold=True), B.stat_cell(m["test_accuracy"]), ci_text(m), *FULL_ROW,
                                 B.stat_cell(m.get("test_accuracy_no_postprocess")), B.stat_cell(m.get("val_accuracy"))]]
    baselines = load_baselines(baselines_path) if baselines_path.is_file() else {}
    for name, b in baselines.items():
        label, dataset = str(b.get("label") or name), str(b.get("dataset", m["dataset"]))
        rows.append([B.cell(label, note="" if dataset == m["dataset"] else f"[{dataset}]"), B.stat_cell(b["test_accuracy"]),
                     ci_text(b), *_versus("baselines", label, b), B.stat_cell(b.get("test_accuracy_no_postprocess")),
                     B.stat_cell(b.get("val_accuracy"))])
    ci = m.get("test_accuracy_ci") or {}
    split = f": {ci['videos']} test videos, {ci['seeds']} seeds" if ci else ""
    return [B.text(f"This run, {m['dataset']}{split}. {ACCURACY}", "cap"),
            B.table(B.ci_says(MAIN_HEADER, VIDEOS_SEEDS), rows, id="main-table"), *notes]


def peer(reports: Path) -> list[Block]:
    """The peers' protocol (epoch and L chosen on test) beside ours, where the runs recorded it."""
    rows = peer_rows(main_table_runs(reports))
    return [B.text(PEER_CAPTION, "cap"), B.table(B.ci_says(PEER_HEADER, VIDEOS_SEEDS), rows, id="peer-table")] if rows else []


def _leaves(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _value_words(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def overrides_words(params: Mapping[str, Any]) -> str:
    """A variant's params overrides in words: {'localizer': {'windows': [10, 5]}} -> 'windows 10, 5'."""
    words = [f"{key.rsplit('.', 1)[-1].replace('_', ' ')} {_value_words(v)}" for key, v in _leaves(params)]
    return "; ".join(words) or "as in params.yaml"


ABLATION_HEADER = ["variant", "what changes", "test acc. (%)", "95 % CI", "full − this, points [95 % CI]", "p", "verdict",
                   "no post-proc. (%)", "val acc. (%)"]


def ablation_table(variants: Sequence[Mapping[str, Any]]) -> Block:
    """The variants of one ablation axis: mean ± std in %, CI, paired difference full model − variant."""
    rows = []
    for v in variants:
        versus = FULL_ROW if v.get("is_full_model") else _versus(str(v.get("axis", "")), v["name"], v)
        name = B.cell(v["name"], bold=bool(v.get("is_full_model")), note="(full model)" if v.get("is_full_model") else "")
        rows.append([name, overrides_words(v.get("params") or {}), B.stat_cell(v.get("test_accuracy")), ci_text(v),
                     *versus, B.stat_cell(v.get("test_accuracy_no_postprocess")), B.stat_cell(v.get("val_accuracy"))])
    axis = str(variants[0].get("axis", "")) if variants else ""
    return B.table(B.ci_says(ABLATION_HEADER, VIDEOS_SEEDS), rows, id=f"ablation-table-{axis}")


TOWER_RUN_STUDY = ("on other towers' features, so a comparison between tower sets: trained and compared across tower "
                   "runs by the tower-run study (`make confirm`).")


def ablation_table_html(variants: Sequence[Mapping[str, Any]]) -> str:
    """`ablation_table` as HTML (the ablation notebooks display it)."""
    return B.render_block(ablation_table(variants))


def ablations(reports: Path) -> list[Block]:
    """One table per ablation axis (their differences are in the forest plot)."""
    path = reports / "ablations.json"
    if not path.is_file():
        return [B.missing(path)]
    out: list[Block] = [B.text(ABLATIONS_CAPTION, "cap")]
    elsewhere = read_mapping(path).get("in_tower_run_study", {})
    for axis, variants in load_ablations(path).items():
        out += [B.heading(axis, f"ablation-{axis}"), ablation_table(variants)]
        if elsewhere.get(axis):
            out.append(B.text(f"{', '.join(elsewhere[axis])}: {TOWER_RUN_STUDY}", "cap"))
    return out if len(out) > 1 else [B.na(f"{path}: no variants")]


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
    return [B.text(line), B.text("R@1 CIs: 95 %, resampling validation videos.", "cap"),
            B.figure(figure_to_data_uri(fig), "Stage A: validation retrieval per epoch")]


def figures(reports: Path) -> list[Block]:
    """Every reports/figures/*.png, inlined, captioned from its file name (none: no blocks)."""
    from avelib.viz.report import file_to_data_uri

    folder = reports / "figures"
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    return [B.group([B.figure(file_to_data_uri(p), caption_from_name(p)) for p in pngs])] if pngs else []


def _plot_tables(reports: Path) -> dict[Path, list[dict[str, Any]]]:
    """The DVC plot files under reports/plots/, read."""
    from avelib.viz.report import read_plot_table

    folder = reports / "plots"
    files = sorted([*folder.glob("*.csv"), *folder.glob("*.json")]) if folder.is_dir() else []
    return {p: read_plot_table(p) for p in files}


def _is_history(records: Sequence[Mapping[str, Any]]) -> bool:
    return bool(records) and HISTORY_COLUMNS <= records[0].keys()


def _seed_histories(path: Path, records: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """A training-history plot file's rows, one list of epoch records per seed."""
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        for r in records:
            runs.setdefault(f"seed {r['seed']}", []).append({k: float(r[k]) for k in ("epoch", "train_loss", "val_accuracy")})
    except ValueError as err:
        raise ReportInputError(f"{path}: a training history needs numbers in epoch, train_loss, val_accuracy: {err}") from None
    return runs


def _training_curves(reports: Path, metrics: Mapping[str, Any]) -> list[Block]:
    """Loss and validation accuracy against epoch, one line per seed: metrics.json `history`, else the plot file."""
    from avelib.viz.localizer import training_curves
    from avelib.viz.report import figure_to_data_uri

    if metrics.get("history"):
        source, runs = "metrics.json", {f"seed run {k}": h for k, h in enumerate(metrics["history"])}
    else:
        found = [(p, r) for p, r in _plot_tables(reports).items() if _is_history(r)]
        if not found:
            return []
        source, runs = found[0][0].name, _seed_histories(*found[0])
    try:
        fig = training_curves(list(runs.values()), list(runs), title=f"AVE-CLIP on {metrics.get('dataset', '?')}")
    except (KeyError, TypeError) as e:
        raise ReportInputError(f"{reports / source}: a training history must be a list (per seed) of lists of epoch "
                               f"records with epoch, train_loss, val_accuracy: {e!r}") from None
    return [B.figure(figure_to_data_uri(fig), f"Training curves per seed against epoch (from {source})")]


def run_figures(reports: Path) -> list[Block]:
    """Training curves and the confusion matrix (`confusion_matrix` of metrics.json) of the main run."""
    import numpy as np

    from avelib.data.ave import NUM_CLASSES
    from avelib.viz.localizer import confusion_heatmap
    from avelib.viz.report import figure_to_data_uri

    path = reports / "metrics.json"
    m = load_metrics(path) if path.is_file() else {}
    figs = _training_curves(reports, m)
    if "confusion_matrix" in m:
        conf = np.asarray(m["confusion_matrix"])
        if conf.shape != (NUM_CLASSES, NUM_CLASSES):
            raise ReportInputError(f"{path}: 'confusion_matrix' must be {NUM_CLASSES}x{NUM_CLASSES}, got {conf.shape}")
        fig = confusion_heatmap(conf, title="Test confusion matrix (summed over seeds)")
        figs.append(B.figure(figure_to_data_uri(fig), "Confusion matrix, row-normalised (from metrics.json)"))
    return [B.group(figs)] if figs else []


def plots(reports: Path) -> list[Block]:
    """The DVC plots under reports/plots/ other than the training history (drawn with the run's figures)."""
    from avelib.viz.report import figure_to_data_uri, plot_records

    out: list[Block] = []
    for p, records in _plot_tables(reports).items():
        fig = None if _is_history(records) else plot_records(records, caption_from_name(p))
        if fig is not None:
            out.append(B.figure(figure_to_data_uri(fig), f"{caption_from_name(p)} ({p.name})"))
    return [B.group(out)] if out else []


def notebooks(folder: Path, page: Path, expected: Sequence[str], command: str) -> list[Block]:
    """Relative links from `page` to the executed notebooks' HTML in `folder`; the `expected` ones (names)
    not there yet are listed as what `command` writes."""
    pages = sorted(folder.glob("*.html")) if folder.is_dir() else []
    absent = sorted(set(expected) - {p.stem for p in pages})
    out = [B.links((B.relative(p, page), p.stem) for p in pages)] if pages else []
    if absent:
        out += [B.text(f"Not executed in this copy: `{command}` writes these to {folder}/ (not kept in git):"),
                B.items(("", f"{name}.html") for name in absent)]
    return out
