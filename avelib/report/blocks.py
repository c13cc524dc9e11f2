"""The building blocks of the report pages: plain dicts that `templates/blocks.html.j2` renders.

Python decides what a page says (the sections build blocks from the result files); the templates
decide how it looks. Every text goes through Jinja2's autoescaping, so no section writes HTML.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jinja2

Block = dict[str, Any]
Cell = str | dict[str, Any]  # plain text, or {"text", "bold", "note"} (a note is shown small)

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_block(block: Block) -> str:
    """One block as an HTML string (for notebooks: `IPython.display.HTML(render_block(b))`)."""
    return str(environment().get_template("blocks.html.j2").module.render(block))  # type: ignore[attr-defined]


def table(header: Sequence[str], rows: Iterable[Sequence[Cell]], id: str | None = None) -> Block:
    return {"kind": "table", "header": list(header), "rows": [list(r) for r in rows], "id": id}


def figure(uri: str, caption: str) -> Block:
    return {"kind": "figure", "uri": uri, "caption": caption}


def group(blocks: Sequence[Block], layout: str = "grid") -> Block:
    """Blocks side by side: `grid` (figures that wrap) or `row` (a table beside its figure)."""
    return {"kind": "group", "blocks": list(blocks), "layout": layout}


def heading(text: str, id: str) -> Block:
    return {"kind": "heading", "text": text, "id": id}


def text(words: str, css: str | None = None) -> Block:
    return {"kind": "text", "text": words, "css": css}


def na(words: str) -> Block:
    """A highlighted note: something is not available."""
    return text(words, "na")


def missing(path: Path | str) -> Block:
    return na(f"not available: {path} missing")


def pre(words: str) -> Block:
    return {"kind": "pre", "text": words}


def links(items: Iterable[tuple[str, str]]) -> Block:
    """A list of (href, text) links."""
    return {"kind": "links", "links": [{"href": h, "text": t} for h, t in items]}


def cell(words: str, bold: bool = False, note: str = "") -> Cell:
    return {"text": words, "bold": bold, "note": note}


def stat_cell(stat: Mapping[str, Any] | None) -> Cell:
    """'83.21 ± 0.54 (n=3)' in percent from a {mean, std, per_seed} fraction statistic; '—' when absent."""
    if not stat:
        return "—"
    n = len(stat.get("per_seed") or [])
    return cell(f"{100.0 * stat['mean']:.2f} ± {100.0 * stat['std']:.2f}", note=f"(n={n})" if n else "")
