"""The building blocks of the report pages: plain dicts that `templates/blocks.html.j2` renders.

Python decides what a page says (the sections build blocks from the result files); the templates
decide how it looks. Every text goes through Jinja2's autoescaping, so no section writes HTML.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jinja2

from avelib.io import atomic_path

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


def relative(target: Path, page: Path) -> str:
    """The href from `page` to `target` (a relative link, so the reports folder can move as a whole)."""
    return Path(os.path.relpath(target.resolve(), page.resolve().parent)).as_posix()


def linked(before: str, href: str, words: str, after: str = "") -> Block:
    """A paragraph with one link in it."""
    return {"kind": "linked", "before": before, "href": href, "text": words, "after": after}


def items(entries: Iterable[tuple[str, str]], css: str | None = None) -> Block:
    """A bulleted list of (lead, text): the lead in bold, then the text."""
    return {"kind": "items", "entries": [{"lead": lead, "text": t} for lead, t in entries], "css": css}


def cell(words: str, bold: bool = False, note: str = "") -> Cell:
    return {"text": words, "bold": bold, "note": note}


def ci_says(header: Sequence[str], resamples: str) -> list[str]:
    """`header` with each "95 % CI" in it saying what the bootstrap behind it resamples."""
    return [h.replace("95 % CI", f"95 % CI over {resamples}") for h in header]


def stat_cell(stat: Mapping[str, Any] | None) -> Cell:
    """'83.21 ± 0.54 (n=3)' in percent from a {mean, std, per_seed} fraction statistic; '—' when absent."""
    if not stat:
        return "—"
    n = len(stat.get("per_seed") or [])
    return cell(f"{100.0 * stat['mean']:.2f} ± {100.0 * stat['std']:.2f}", note=f"(n={n})" if n else "")


def section(id: str, nav: str, title: str, blocks: Sequence[Block]) -> dict[str, Any]:
    """A page section: `nav` names it in the page's navigation bar, `title` above it."""
    return {"id": id, "title": title, "nav": nav, "blocks": list(blocks)}


def page_html(title: str, intro: Sequence[Block], sections: Sequence[Mapping[str, Any]]) -> str:
    """A whole page (templates/index.html.j2); a section without blocks is left out."""
    kept = [s for s in sections if s["blocks"]]
    return environment().get_template("index.html.j2").render(title=title, intro=list(intro), sections=kept)


def write_page(html: str, out: str | Path) -> Path:
    """Write a page atomically; return its path."""
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out
