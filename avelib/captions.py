"""Predicted events as people watch them: WebVTT and SubRip subtitles, and an offline HTML page with
the video and its timeline side by side (written by `python -m avelib predict`).

An event is a run of consecutive seconds with the same event label; background seconds get no cue.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Sequence

import jinja2
import numpy as np

from avelib.data.ave import BACKGROUND, label_name

PAGE_TEMPLATE = "video_page.html.j2"


@dataclass(frozen=True)
class Cue:
    """One predicted event: [start, end) in seconds and its category."""

    start: int
    end: int
    category: str


def cues(labels: np.ndarray) -> list[Cue]:
    """The runs of equal event labels in int [T] per-second labels (background runs left out)."""
    out: list[Cue] = []
    start = 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            if labels[start] != BACKGROUND:
                out.append(Cue(start, t, label_name(int(labels[start]))))
            start = t
    return out


def _stamp(seconds: int, decimal: str) -> str:
    h, rest = divmod(seconds, 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}{decimal}000"


def webvtt(events: Sequence[Cue]) -> str:
    """A WebVTT file (any HTML5 player, VLC, mpv) with one cue per event."""
    blocks = [f"{i}\n{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n{c.category}" for i, c in enumerate(events, 1)]
    return "WEBVTT\n\n" + "".join(b + "\n\n" for b in blocks)


def srt(events: Sequence[Cue]) -> str:
    """A SubRip (.srt) file with one cue per event."""
    return "".join(f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n{c.category}\n\n"
                   for i, c in enumerate(events, 1))


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def video_page(video: Path, page: Path, events: Sequence[Cue], rows: Sequence[dict[str, Any]],
               timeline_png: bytes, provenance: Sequence[str] = (), warning: str | None = None) -> str:
    """The HTML page written to `page`: the video (by its path relative to the page) with the events as
    subtitles, the timeline figure inline, the per-second table, and what the model was trained on
    (`provenance` lines, `warning` where its labels of this video are not meaningful); no network, no file
    but the video."""
    source = Path(os.path.relpath(video.resolve(), page.resolve().parent)).as_posix()
    timeline = "data:image/png;base64," + base64.b64encode(timeline_png).decode("ascii")
    return _environment().get_template(PAGE_TEMPLATE).render(
        title=video.name, source=source, cues=[c.__dict__ for c in events], rows=rows, timeline=timeline,
        provenance=list(provenance), warning=warning)
