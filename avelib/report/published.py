"""Published numbers (real AVE, quoted from the papers and their peers' repositories), in tables of their own:
one per task, each row naming its dataset, never mixed with the rows of this run."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from avelib.eval.loaders import ReportInputError
from avelib.eval.tables import PUBLISHED_CROSSMODAL, PUBLISHED_WEAK
from avelib.report import blocks as B
from avelib.report.blocks import Block

CAPTION = ("Quoted from the papers (avelib.eval.tables), measured on the real AVE test set by their authors: not "
           "comparable with this run's numbers, which are on the dataset the run names. Each row says where its "
           "number was read.")


def published_rows() -> list[dict[str, Any]]:
    """Published AVE results from `avelib.eval.tables.PUBLISHED` (the one source of truth).

    PUBLISHED: a sequence of entries (mappings or objects with attributes) with `method` and `accuracy`
    (segment accuracy; percent or fraction; None = not available) and optionally `venue`, `features`,
    `dataset` (default "AVE"), `note`; or a mapping {method: entry}.
    """
    from avelib.eval.tables import PUBLISHED as published  # at call time: tests put a stand-in module in its place

    if isinstance(published, Mapping):
        return [_published_row(entry, method) for method, entry in published.items()]
    return [_published_row(entry) for entry in published]


def _published_row(entry: Any, method: str | None = None) -> dict[str, Any]:
    """One PUBLISHED entry as {method, venue, accuracy (% or None), features, dataset, note}."""
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
    return {"method": str(method), "venue": str(get("venue", "") or ""), "accuracy": acc,
            "features": str(get("features", "") or ""), "dataset": str(get("dataset", "AVE") or "AVE"),
            "note": str(get("note", "") or "")}


def published_table(entries: Sequence[Mapping[str, Any]], values: Mapping[str, str], id: str) -> Block:
    """One row per entry: method (venue), dataset, features, the `values` columns (header -> key, %), source."""
    rows = [[B.cell(e["method"], note=e.get("venue", "")), e["dataset"], e["features"],
             *("—" if e[key] is None else f"{e[key]:.1f}" for key in values.values()), e["note"]] for e in entries]
    return B.table(["method", "dataset", "features", *values, "source"], rows, id=id)


def published() -> list[Block]:
    """The published numbers of the three tasks."""
    return [B.text(CAPTION, "cap"),
            B.heading("Supervised localization: segment accuracy", "published-supervised"),
            published_table(published_rows(), {"test acc. (%)": "accuracy"}, "published-table"),
            B.heading("Weakly supervised localization: segment accuracy", "published-weak"),
            published_table(PUBLISHED_WEAK, {"test acc. (%)": "accuracy"}, "published-weak-table"),
            B.heading("Cross-modality localization: exact-start accuracy", "published-crossmodal"),
            published_table(PUBLISHED_CROSSMODAL, {"A2V acc. (%)": "a2v", "V2A acc. (%)": "v2a"},
                            "published-crossmodal-table")]
