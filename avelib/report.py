"""reports/index.html: the one page a reader opens first.

The page is self-contained and renders offline: inline CSS only, no scripts, no fonts, every
plot inlined as a `data:` URI; the only links are relative ones to the executed notebooks'
HTML under reports/html/. Missing inputs (a stage that has not run yet) show a clear
"not available: <file> missing" note; malformed inputs raise, naming the file.
"""

from __future__ import annotations

import csv
import html
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from avelib.eval.claims import FULL_ROW, ci_text, p_text, versus_cells
from avelib.eval.stats import direction
from avelib.io import atomic_path, read_json
from avelib.params import load_params, section

DEFAULT_PACKAGES: tuple[str, ...] = (
    "torch", "torchvision", "torchaudio", "numpy", "av", "h5py", "einops", "torchmetrics",
    "matplotlib", "seaborn", "dvc", "papermill", "nbconvert", "ipywidgets",
)  # fmt: skip


@dataclass(frozen=True)
class PredictDefaults:
    """params.yaml section `report.predict`: own-video inference defaults."""

    checkpoint: str = "models/localizer/seed0/best.pt"
    """Localizer checkpoint (design.md format)."""
    towers: str | None = "models/finetune/best.pt"
    """AudioCLIP checkpoint the features are computed with (null: random-init towers of `audioclip_profile`, for smoke tests only)."""
    audioclip_profile: str = "small"
    """AudioCLIP profile ("small" | "paper") used when `towers` is null."""
    frames_per_second: int = 4
    """K frames per second averaged into the visual feature; keep it equal to the decode stage's K."""
    batch_size: int = 64
    """Images/audio seconds encoded per forward pass of the towers."""
    out: str = "predictions"
    """Output folder; each video gets `<out>/<video stem>/` (labels.json, labels.csv, timeline.png)."""


@dataclass(frozen=True)
class ReportConfig:
    """params.yaml section `report`: the index page and own-video inference defaults."""

    reports_dir: str = "reports"
    """Folder the pipeline writes its reports into (metrics.json, ablations.json, figures/, html/, ...)."""
    out: str = "reports/index.html"
    """The page written by `python -m avelib report`."""
    title: str = "AVE-CLIP reproduction"
    """Title of the index page."""
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    """Python packages whose installed versions the environment section lists."""
    predict: PredictDefaults = field(default_factory=PredictDefaults)
    """Defaults of `python -m avelib predict` (each overridable on the command line)."""


# ---------------------------------------------------------------- inputs


class ReportInputError(ValueError):
    """A report input that exists but does not have the expected structure."""


def _missing(path: Path) -> str:
    return f'<p class="na">not available: {html.escape(str(path))} missing</p>'


def _stat(obj: Any, path: Path, where: str) -> dict[str, Any]:
    """A {mean, std, per_seed} statistic; raises naming the file when malformed."""
    if not isinstance(obj, Mapping) or "mean" not in obj:
        raise ReportInputError(f"{path}: '{where}' must be a mapping with 'mean' (and 'std', 'per_seed'), got {obj!r}")
    for key in ("mean", "std"):
        v = obj.get(key, 0.0)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ReportInputError(f"{path}: '{where}.{key}' must be a number, got {v!r}")
    per_seed = obj.get("per_seed", [])
    if not isinstance(per_seed, list):
        raise ReportInputError(f"{path}: '{where}.per_seed' must be a list, got {per_seed!r}")
    return {"mean": float(obj["mean"]), "std": float(obj.get("std", 0.0)), "per_seed": per_seed}


def _read_mapping(path: Path) -> dict[str, Any]:
    data = read_json(path)  # raises ValueError naming the file on bad JSON
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    return data


def load_metrics(path: str | Path) -> dict[str, Any]:
    """reports/metrics.json, checked: dataset + test_accuracy (+ optional no-postprocess / val)."""
    path = Path(path)
    data = _read_mapping(path)
    if not isinstance(data.get("dataset"), str):
        raise ReportInputError(f"{path}: 'dataset' must be a string naming the dataset, got {data.get('dataset')!r}")
    if "test_accuracy" not in data:
        raise ReportInputError(f"{path}: key 'test_accuracy' is missing")
    out = dict(data)
    for key in ("test_accuracy", "test_accuracy_no_postprocess", "val_accuracy"):
        if key in data:
            out[key] = _stat(data[key], path, key)
    return out


def load_baselines(path: str | Path) -> dict[str, dict[str, Any]]:
    """reports/baselines.json: {name: {test_accuracy, test_accuracy_no_postprocess, val_accuracy, label}}."""
    path = Path(path)
    data = _read_mapping(path)
    out: dict[str, dict[str, Any]] = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping) or "test_accuracy" not in entry:
            raise ReportInputError(f"{path}: baseline '{name}' must be an object with 'test_accuracy'")
        row = dict(entry)
        for key in ("test_accuracy", "test_accuracy_no_postprocess", "val_accuracy"):
            if key in entry:
                row[key] = _stat(entry[key], path, f"{name}.{key}")
        out[name] = row
    return out


def load_ablations(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """reports/ablations.json grouped by axis, in file order: {axis: [variant, ...]}."""
    path = Path(path)
    data = _read_mapping(path)
    variants = data.get("variants")
    if not isinstance(variants, list):
        raise ReportInputError(f"{path}: 'variants' must be a list")
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, v in enumerate(variants):
        if not isinstance(v, Mapping) or not isinstance(v.get("axis"), str) or not isinstance(v.get("name"), str):
            raise ReportInputError(f"{path}: variants[{i}] needs string 'axis' and 'name'")
        if "test_accuracy" not in v:
            raise ReportInputError(f"{path}: variants[{i}] ({v['axis']}/{v['name']}) lacks 'test_accuracy'")
        row = dict(v)
        for key in ("test_accuracy", "test_accuracy_no_postprocess", "val_accuracy"):
            if key in v:
                row[key] = _stat(v[key], path, f"variants[{i}].{key}")
        groups.setdefault(v["axis"], []).append(row)
    return groups


def published_rows() -> list[dict[str, Any]] | None:
    """Published AVE results from `avelib.eval.tables.PUBLISHED` (the one source of truth); None when absent.

    PUBLISHED: a sequence of entries (mappings or objects with attributes) with `method` and `accuracy`
    (segment accuracy; percent or fraction; None = not available) and optionally `features`, `dataset`
    (default "AVE"), `note`; or a mapping {method: entry}.
    """
    try:
        from avelib.eval.tables import PUBLISHED
    except ModuleNotFoundError as e:
        if e.name == "avelib.eval.tables":
            return None
        raise
    if isinstance(PUBLISHED, Mapping):
        return [_published_row(entry, method) for method, entry in PUBLISHED.items()]
    return [_published_row(entry) for entry in PUBLISHED]


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


# ---------------------------------------------------------------- formatting


def as_percent(x: float) -> float:
    """Accuracies are stored as fractions in [0, 1] (metrics.json); the page shows percent."""
    return 100.0 * x


def fmt_stat(stat: Mapping[str, Any] | None) -> str:
    """'83.21 ± 0.54 (n=3)' from a {mean,std,per_seed} fraction statistic; '—' when absent."""
    if not stat:
        return "—"
    n = len(stat.get("per_seed") or [])
    seeds = f" <span class=\"n\">(n={n})</span>" if n else ""
    return f"{as_percent(stat['mean']):.2f} ± {as_percent(stat['std']):.2f}{seeds}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], css_id: str | None = None, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (for cells built from already escaped parts)."""
    ident = f' id="{css_id}"' if css_id else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = "".join(f"<td>{c if raw else html.escape(str(c))}</td>" for c in r)
        body.append(f"<tr>{cells}</tr>")
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(uri: str, caption: str) -> str:
    return (
        f'<figure><img src="{uri}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def caption_from_name(path: Path) -> str:
    """'confusion_matrix_seed0.png' -> 'Confusion matrix seed0'."""
    words = path.stem.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


# ---------------------------------------------------------------- sections


def main_table_section(reports: Path) -> str:
    """Ours vs baselines vs published numbers, each row labelled with its dataset."""
    metrics_path = reports / "metrics.json"
    baselines_path = reports / "baselines.json"
    header = ["method", "dataset", "source", "test acc. (%)", "95 % CI", "full − this, points [95 % CI]", "p",
              "verdict", "test acc., no post-proc. (%)", "val acc. (%)"]
    rows: list[list[str]] = []
    notes: list[str] = []
    e = html.escape
    if metrics_path.is_file():
        m = load_metrics(metrics_path)
        rows.append([
            "<b>AVE-CLIP (ours)</b>", e(m["dataset"]), "this run", fmt_stat(m.get("test_accuracy")),
            e(ci_text(m)), *FULL_ROW, fmt_stat(m.get("test_accuracy_no_postprocess")), fmt_stat(m.get("val_accuracy")),
        ])  # fmt: skip
        dataset = m["dataset"]
    else:
        notes.append(_missing(metrics_path))
        dataset = "?"
    if baselines_path.is_file():
        for name, b in load_baselines(baselines_path).items():
            label = str(b.get("label") or name)
            rows.append([
                e(label), e(str(b.get("dataset", dataset))), "this run (baseline)", fmt_stat(b.get("test_accuracy")),
                e(ci_text(b)), *map(e, versus_cells("baselines", label, b)),
                fmt_stat(b.get("test_accuracy_no_postprocess")), fmt_stat(b.get("val_accuracy")),
            ])  # fmt: skip
    else:
        notes.append(_missing(baselines_path))
    published = published_rows()
    if published is None:
        notes.append('<p class="na">not available: avelib.eval.tables.PUBLISHED missing</p>')
    else:
        for p in published:
            label = e(p["method"]) + (f" <span class=\"n\">[{e(p['features'])}]</span>" if p["features"] else "")
            acc = "—" if p["accuracy"] is None else f"{p['accuracy']:.1f}"
            rows.append([label, e(p["dataset"]), "published" + (f" ({e(p['note'])})" if p["note"] else ""), acc,
                         "—", "—", "—", "—", "—", "—"])
    caption = (
        "<p class=\"cap\">Segment accuracy (29 classes, background counted), mean ± std over seeds; 95 % CI "
        "by a crossed bootstrap over test videos and seeds; differences paired on the same test videos, "
        "a claim counts as resolved only where its CI excludes zero. "
        "Rows of different datasets are not comparable with each other: published numbers are on the "
        "real AVE test set; ours are on the dataset named in each row.</p>"
    )
    table = _table(header, rows, css_id="main-table", raw=True) if rows else ""
    return caption + table + "".join(notes)


def ablation_table_html(variants: Sequence[Mapping[str, Any]]) -> str:
    """The variants of one ablation axis as an HTML table (mean ± std in %, CI, paired difference to the full model)."""
    e = html.escape
    rows = []
    for v in variants:
        overrides = ", ".join(f"{k}={v2}" for k, v2 in (v.get("params") or {}).items())
        versus = FULL_ROW if v.get("is_full_model") else versus_cells(str(v.get("axis", "")), v["name"], v)
        rows.append([
            e(v["name"]), e(overrides) or "—", fmt_stat(v.get("test_accuracy")), e(ci_text(v)), *map(e, versus),
            fmt_stat(v.get("test_accuracy_no_postprocess")), fmt_stat(v.get("val_accuracy")),
        ])  # fmt: skip
    header = ["variant", "overrides", "test acc. (%)", "95 % CI", "full − this, points [95 % CI]", "p", "verdict",
              "no post-proc. (%)", "val acc. (%)"]
    return _table(header, rows, raw=True)


def ablation_figure(axis: str, variants: Sequence[Mapping[str, Any]]):  # -> Figure
    """Test accuracy mean ± std of the variants of one axis."""
    from avelib.viz.report import mean_std_plot

    return mean_std_plot(
        [v["name"] for v in variants],
        [as_percent(v["test_accuracy"]["mean"]) for v in variants],
        [as_percent(v["test_accuracy"]["std"]) for v in variants],
        title=f"ablation: {axis} (test accuracy, mean ± std)",
    )


def ablation_section(reports: Path) -> str:
    """One table (+ plot) per ablation axis."""
    from avelib.viz.report import figure_to_data_uri

    path = reports / "ablations.json"
    if not path.is_file():
        return _missing(path)
    parts = []
    e = html.escape
    for axis, variants in load_ablations(path).items():
        uri = figure_to_data_uri(ablation_figure(axis, variants))
        parts.append(
            f'<h3 id="ablation-{e(axis)}">{e(axis)}</h3><div class="row">{ablation_table_html(variants)}'
            f"{_figure(uri, f'Ablation {axis}: test accuracy')}</div>"
        )
    return "".join(parts) if parts else f'<p class="na">{e(str(path))}: no variants</p>'


def stage_a_text(summary: Mapping[str, Any]) -> str:
    """One line on stage A: the kept epoch's validation R@1 vs the start, paired (plain text)."""
    def r1(entry: Mapping[str, Any] | None) -> str:
        if not entry:
            return "—"
        lo, hi = entry["a2i_r1_ci"]
        return f"{entry['a2i_r1']:.3f} [{lo:.3f}, {hi:.3f}]"

    line = (f"Validation audio→image R@1 over {summary.get('val_pairs')} pairs of {summary.get('val_videos')} videos: "
            f"start (epoch 0) {r1(summary.get('start'))}, kept epoch {summary['kept_epoch']} {r1(summary['kept'])}")
    versus = summary.get("kept_minus_start")
    if summary["kept_epoch"] == 0:
        return line + "; fine-tuning did not raise it, so the start was kept."
    if versus:
        lo, hi = versus["ci"]
        verdict = {1: "fine-tuning helped (resolved)", -1: "fine-tuning hurt (resolved)", 0: "not resolved"}[direction((lo, hi))]
        line += f"; kept − start {versus['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}], p {p_text(versus['p_value'])}: {verdict}"
    return line + "."


def finetune_section(reports: Path) -> str:
    """Stage A (reports/finetune.json): the R@1 curve with its CI next to the start, and the verdict."""
    from avelib.viz.report import figure_to_data_uri
    from avelib.viz.training import plot_finetune_recall

    path = reports / "finetune.json"
    if not path.is_file():
        return _missing(path)
    summary = _read_mapping(path)
    try:
        text = stage_a_text(summary)
        fig = plot_finetune_recall(summary["epochs"], summary["kept_epoch"])
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"{path}: not a stage-A summary (avelib.train.contrastive.stage_summary): {err!r}") from None
    return f"<p>{html.escape(text)}</p>" + _figure(figure_to_data_uri(fig), "Stage A: validation retrieval per epoch")


def figures_section(reports: Path) -> str:
    """Every reports/figures/*.png, inlined, captioned from its file name."""
    from avelib.viz.report import file_to_data_uri

    folder = reports / "figures"
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not pngs:
        return _missing(folder / "*.png")
    return '<div class="grid">' + "".join(_figure(file_to_data_uri(p), caption_from_name(p)) for p in pngs) + "</div>"


def _read_plot_table(path: Path) -> list[dict[str, Any]]:
    """A DVC plot file (CSV with header, or JSON list of records / {key: [records]}) as records."""
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    data = read_json(path)
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # DVC's {"name": [records]} form
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ReportInputError(f"{path}: a plot file must hold a list of records (objects)")
    return data


def plot_records(records: list[dict[str, Any]], title: str):  # -> Figure | None
    """Line plot of every numeric column against the first column; None when nothing is numeric."""
    from avelib.viz.report import new_figure

    if not records:
        return None
    cols = list(records[0].keys())
    x_key, y_keys = cols[0], []

    def num(v: Any) -> float | None:
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    xs = [num(r.get(x_key)) for r in records]
    if any(x is None for x in xs):
        return None
    for c in cols[1:]:
        if all(num(r.get(c)) is not None for r in records):
            y_keys.append(c)
    if not y_keys:
        return None
    fig, axes = new_figure(width=5.6, height=3.2)
    ax = axes[0, 0]
    for c in y_keys:
        ax.plot(xs, [num(r[c]) for r in records], marker="." if len(records) < 40 else None, label=c)
    ax.set_xlabel(x_key)
    ax.set_title(title)
    ax.legend()
    return fig


def metrics_figures_section(reports: Path) -> str:
    """Training curves (metrics.json `history`) and the confusion matrix (`confusion_matrix`) of the main run."""
    import numpy as np

    from avelib.data.ave import NUM_CLASSES
    from avelib.viz.localizer import confusion_heatmap, training_curves
    from avelib.viz.report import figure_to_data_uri

    path = reports / "metrics.json"
    if not path.is_file():
        return _missing(path)
    m = load_metrics(path)
    parts = []
    hist = m.get("history")
    if hist:
        try:
            seeds = [f"seed run {s}" for s in range(len(hist))]
            fig = training_curves(hist, seeds, title=f"AVE-CLIP on {m['dataset']}")
        except (KeyError, TypeError) as e:
            raise ReportInputError(f"{path}: 'history' must be a list (per seed) of lists of epoch records "
                                   f"with epoch, train_loss, val_accuracy: {e!r}") from None
        parts.append(_figure(figure_to_data_uri(fig), "Training curves per seed (from metrics.json)"))
    if "confusion_matrix" in m:
        conf = np.asarray(m["confusion_matrix"])
        if conf.shape != (NUM_CLASSES, NUM_CLASSES):
            raise ReportInputError(f"{path}: 'confusion_matrix' must be {NUM_CLASSES}x{NUM_CLASSES}, got {conf.shape}")
        fig = confusion_heatmap(conf, title="Test confusion matrix (summed over seeds)")
        parts.append(_figure(figure_to_data_uri(fig), "Confusion matrix, row-normalised (from metrics.json)"))
    if not parts:
        return f'<p class="na">not available: {html.escape(str(path))} has no history / confusion_matrix</p>'
    return '<div class="grid">' + "".join(parts) + "</div>"


def plots_section(reports: Path) -> str:
    """Training curves and other DVC plots from reports/plots/*.csv|*.json, drawn and inlined."""
    from avelib.viz.report import figure_to_data_uri

    folder = reports / "plots"
    files = sorted([*folder.glob("*.csv"), *folder.glob("*.json")]) if folder.is_dir() else []
    if not files:
        return _missing(folder / "*.csv|*.json")
    parts = []
    for p in files:
        fig = plot_records(_read_plot_table(p), caption_from_name(p))
        if fig is None:
            parts.append(f'<p class="na">{html.escape(str(p))}: no numeric columns to draw</p>')
        else:
            parts.append(_figure(figure_to_data_uri(fig), f"{caption_from_name(p)} ({p.name})"))
    return '<div class="grid">' + "".join(parts) + "</div>"


def environment_info(packages: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Python, platform, CPU/GPU and package versions of the machine building the report."""
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu cores": str(os.cpu_count()),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        else:
            info["gpu"] = "none (CPU only)"
    except ImportError:
        info["torch"] = "not installed"
    for name in packages:
        try:
            info[f"package {name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[f"package {name}"] = "not installed"
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def data_hashes(lock_path: Path) -> list[tuple[str, str, str, str]]:
    """(stage, path, md5, size) of every stage output in dvc.lock."""
    try:
        lock = yaml.safe_load(lock_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReportInputError(f"{lock_path}: not valid YAML: {e}") from e
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        raise ReportInputError(f"{lock_path}: expected a 'stages' mapping (DVC 3 lock file)")
    rows = []
    for stage, body in stages.items():
        for out in (body or {}).get("outs", []) or []:
            if not isinstance(out, dict) or "path" not in out:
                raise ReportInputError(f"{lock_path}: stage '{stage}' has an out without 'path': {out!r}")
            size = out.get("size")
            extra = f"{size} B" + (f", {out['nfiles']} files" if "nfiles" in out else "") if size is not None else ""
            rows.append((str(stage), str(out["path"]), str(out.get("md5", out.get("hash", "—"))), extra))
    return rows


def notebooks_section(reports: Path, out: Path) -> str:
    """Relative links to every executed notebook's HTML under reports/html/."""
    folder = reports / "html"
    pages = sorted(folder.glob("*.html")) if folder.is_dir() else []
    if not pages:
        return _missing(folder / "*.html")
    items = []
    for p in pages:
        href = Path(os.path.relpath(p.resolve(), out.resolve().parent)).as_posix()
        items.append(f'<li><a href="{html.escape(href)}">{html.escape(p.stem)}</a></li>')
    return "<ul>" + "".join(items) + "</ul>"


# ---------------------------------------------------------------- page

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1200px;
padding:0 1.5rem 3rem;color:#1d1d1f;line-height:1.45}
h1{margin:1.2rem 0 .2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
nav a{margin-right:.9rem}.meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #d8d8d8;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f4f6}tbody tr:nth-child(even){background:#fafafa}
.na{color:#9a3412;background:#fff7ed;border-left:3px solid #f97316;padding:.3rem .6rem}
.n{color:#777;font-size:.85em}.cap{color:#444;font-size:.9rem}
.grid,.row{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
figure{margin:.4rem 0;max-width:100%}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}
pre{background:#f6f8fa;padding:.7rem;overflow-x:auto;font-size:.82rem;border:1px solid #e5e7eb}
code{font-size:.85rem}
"""


def render_index(
    reports_dir: str | Path = "reports",
    params_path: str | Path = "params.yaml",
    lock_path: str | Path = "dvc.lock",
    out: str | Path = "reports/index.html",
    title: str = "AVE-CLIP reproduction",
    packages: Sequence[str] = DEFAULT_PACKAGES,
) -> str:
    """The index page as one HTML string (see `build_index`)."""
    reports, params_path, lock_path, out = Path(reports_dir), Path(params_path), Path(lock_path), Path(out)
    e = html.escape
    sections: list[tuple[str, str, str]] = [
        ("main", "Main result", main_table_section(reports)),
        ("ablations", "Ablations", ablation_section(reports)),
        ("stage-a", "Stage A: contrastive fine-tuning", finetune_section(reports)),
        ("run", "Training curves and confusion matrix", metrics_figures_section(reports)),
        ("curves", "Other plots (reports/plots)", plots_section(reports)),
        ("figures", "Figures (confusion matrix, timelines, ...)", figures_section(reports)),
        ("notebooks", "Executed notebooks", notebooks_section(reports, out)),
    ]
    env = environment_info(packages)
    sections.append(("environment", "Environment", _table(["item", "value"], env.items())))
    if params_path.is_file():
        params_html = f"<pre>{e(params_path.read_text())}</pre>"
    else:
        params_html = _missing(params_path)
    sections.append(("params", f"Parameters ({e(params_path.name)})", params_html))
    if lock_path.is_file():
        hashes = data_hashes(lock_path)
        lock_html = _table(["stage", "output", "md5", "size"], hashes, css_id="hashes") if hashes else (
            f'<p class="na">{e(str(lock_path))}: no stage outputs</p>'
        )
    else:
        lock_html = _missing(lock_path)
    sections.append(("hashes", "Data hashes (dvc.lock)", lock_html))

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{sid}">{e(h.split(" (")[0])}</a>' for sid, h, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{h}</h2>{content}</section>' for sid, h, content in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{e(title)}</h1><p class=\"meta\">AVE-CLIP (WACV 2023) reproduction with avelib; built {stamp}. "
        "Every number of ours comes from the files under the reports folder; published numbers are "
        "quoted from the papers.</p>"
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )


def build_index(
    reports_dir: str | Path = "reports",
    params_path: str | Path = "params.yaml",
    lock_path: str | Path = "dvc.lock",
    out: str | Path = "reports/index.html",
    title: str = "AVE-CLIP reproduction",
    packages: Sequence[str] = DEFAULT_PACKAGES,
) -> Path:
    """Write the self-contained, offline index page atomically; return its path."""
    page = render_index(reports_dir, params_path, lock_path, out, title, packages)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def report_config(params_path: str | Path = "params.yaml") -> ReportConfig:
    """The `report` section of params.yaml (defaults when the file or the section is absent)."""
    path = Path(params_path)
    if not path.is_file():
        return ReportConfig()
    params = load_params(path)
    return section(params, "report", ReportConfig) if "report" in params else ReportConfig()


# ---------------------------------------------------------------- explore notebook support


def demo_ablations() -> dict[str, list[dict[str, Any]]]:
    """Made-up ablation results, shown by the explore notebook ONLY when ablations.json is missing."""

    def stat(m: float) -> dict[str, Any]:
        return {"mean": m, "std": 0.01, "per_seed": [m - 0.01, m + 0.01]}

    return {
        "DEMO attention": [{"axis": "DEMO attention", "name": n, "params": {"localizer.attention": n}, "test_accuracy": stat(m)}
                           for n, m in (("temporal", 0.70), ("feature", 0.66), ("both", 0.74))],
        "DEMO windows": [{"axis": "DEMO windows", "name": n, "params": {}, "test_accuracy": stat(m)}
                         for n, m in (("10", 0.68), ("10,5", 0.71), ("10,5,3,2", 0.74))],
    }  # fmt: skip


def explore_ablations(reports_dir: str | Path = "reports") -> tuple[dict[str, list[dict[str, Any]]], str]:
    """(variants by axis, a line saying where they come from); demo values when ablations.json is missing."""
    path = Path(reports_dir) / "ablations.json"
    if path.is_file():
        return load_ablations(path), f"ablations from {path}"
    return demo_ablations(), f"not available: {path} missing -> showing MADE-UP DEMO values (run the ablation stage)"


@dataclass
class VideoSet:
    """What the explore notebook shows per video: media, ground truth, features and a localizer."""

    names: list[str]
    labels: Any  # int64 [N,10] ground truth
    frames: Any  # uint8 [N,10,K,S,S,3]
    audio: Any  # float32 [N,10,R]
    sample_rate: int
    audio_features: Any  # float32 [N,10,Ea]
    visual_features: Any  # float32 [N,10,Ev]
    localizer: Any  # avelib.predict.LocalizerBundle
    source: str  # where all this comes from (pipeline outputs or DEMO)


def load_video_set(
    data_root: str | Path, cache_dir: str | Path, features_dir: str | Path, checkpoint: str | Path,
    split: str = "test", max_videos: int = 50,
) -> VideoSet:  # fmt: skip
    """The `split` videos from the pipeline outputs (dataset, decode cache, features, localizer checkpoint)."""
    import numpy as np

    from avelib.data.ave import load_dataset
    from avelib.data.cache import SegmentCache
    from avelib.data.features import load_feature_set
    from avelib.predict import load_localizer

    for p in (Path(data_root), Path(cache_dir), Path(features_dir), Path(checkpoint)):
        if not p.exists():
            raise FileNotFoundError(f"{p} missing (run the pipeline: dvc repro)")
    ds = load_dataset(data_root)
    cache = SegmentCache.open(cache_dir)
    bundle = load_localizer(checkpoint)
    audio_f, visual_f = load_feature_set(features_dir, visual=bundle.visual)  # [N,10,E] each
    idx = np.asarray(ds.splits[split])
    idx = idx[np.asarray(cache.ok)[idx]][:max_videos]  # decoded videos only
    return VideoSet(
        names=[f"{ds.records[i].video_id} ({ds.records[i].category})" for i in idx],
        labels=np.asarray(ds.labels)[idx], frames=cache.frames[idx], audio=cache.audio[idx],
        sample_rate=int(cache.sample_rate), audio_features=audio_f[idx], visual_features=visual_f[idx],
        localizer=bundle, source=f"{split} split of {data_root}, features {features_dir}, localizer {checkpoint}",
    )  # fmt: skip


def demo_video_set(num_videos: int = 2, seed: int = 0, frames_per_second: int = 4) -> VideoSet:
    """A tiny in-memory stand-in: SynthAVE videos rendered in memory, random-init small AudioCLIP
    features and an UNTRAINED localizer (its predictions and attention are meaningless)."""
    import numpy as np
    import torch

    from avelib.data.ave import CATEGORIES, NUM_SEGMENTS
    from avelib.data.synth import SynthConfig, plan_video, render_audio, render_frames
    from avelib.models.audioclip import build_audioclip
    from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig
    from avelib.predict import LocalizerBundle, encode_video

    torch.manual_seed(seed)
    towers = build_audioclip("small", None)
    cfg = SynthConfig(image_size=towers.config.image_size, sample_rate=towers.config.sample_rate, seed=seed)
    pick = (np.arange(frames_per_second) + 0.5) * cfg.fps / frames_per_second  # K frame times in a second
    names, labels, frames, audio, fa, fv = [], [], [], [], [], []
    for i in range(num_videos):
        label = (5 * i + seed) % len(CATEGORIES)
        plan = plan_video(cfg, i, label)
        f = render_frames(cfg, plan, i).reshape(NUM_SEGMENTS, cfg.fps, *([cfg.image_size] * 2), 3)
        f = f[:, pick.astype(int)]  # [10,K,S,S,3]
        a = render_audio(cfg, plan, i).reshape(NUM_SEGMENTS, cfg.sample_rate)  # [10,R]
        ea, ev = encode_video(towers, f, a)  # [10,E] each
        names.append(f"demo{i} ({CATEGORIES[label]})")
        labels.append(plan["segment_labels"])
        frames.append(f), audio.append(a), fa.append(ea), fv.append(ev)
    e = towers.config.embed_dim
    model = AVECLIPLocalizer(LocalizerConfig(), e, e).eval()
    bundle = LocalizerBundle(model, 1, "frozen", "mean", e, e, Path("<untrained demo localizer>"))
    return VideoSet(
        names=names, labels=np.asarray(labels, dtype=np.int64), frames=np.stack(frames), audio=np.stack(audio),
        sample_rate=cfg.sample_rate, audio_features=np.stack(fa), visual_features=np.stack(fv), localizer=bundle,
        source="MADE-UP DEMO: in-memory SynthAVE videos, random-init towers, untrained localizer",
    )  # fmt: skip


def explore_videos(
    data_root: str | Path, cache_dir: str | Path, features_dir: str | Path, checkpoint: str | Path,
    split: str = "test", max_videos: int = 50,
) -> tuple[VideoSet, str]:  # fmt: skip
    """The pipeline's videos, or the in-memory demo set (said so in the returned line) when outputs are missing."""
    try:
        vs = load_video_set(data_root, cache_dir, features_dir, checkpoint, split, max_videos)
    except FileNotFoundError as e:
        vs = demo_video_set()
        return vs, f"not available: {e} -> showing a {vs.source}"
    return vs, f"videos: {vs.source}"


def video_figures(vs: VideoSet, i: int) -> dict[str, Any]:
    """Frames strip, spectrogram, ground truth vs prediction (+ alpha) timeline and attention maps of video i."""
    import torch

    from avelib.eval.postprocess import smooth_predictions
    from avelib.viz.data import frame_strip, spectrogram
    from avelib.viz.localizer import attention_maps, timelines

    model = vs.localizer.model
    a = torch.as_tensor(vs.audio_features[i : i + 1])  # [1,10,Ea]
    v = torch.as_tensor(vs.visual_features[i : i + 1])  # [1,10,Ev]
    with torch.inference_mode():
        out = model(a, v, return_attention=True)
    pred = smooth_predictions(model.predict(out).numpy(), vs.localizer.postprocess_max_len)[0]  # [10]
    gt = vs.labels[i]
    return {
        "frames": frame_strip(vs.frames[i], gt, title=vs.names[i]),
        "spectrogram": spectrogram(vs.audio[i], vs.sample_rate, gt, title=f"{vs.names[i]}: audio"),
        "timeline": timelines(gt, pred, out.alpha[0].numpy(), titles=[vs.names[i]]),
        "attention": attention_maps(out.attention or {}, 0, title=f"{vs.names[i]}: attention (mean over heads)"),
    }
