"""The first screen of reports/index.html: one sentence of result per task, from the numbers of
reports/headline.json (test accuracy with its 95 % CI) and the paired differences (avelib.report.differences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from avelib.eval.claims import FULL_MODEL, interval_text
from avelib.eval.headline import headline
from avelib.eval.loaders import load_metrics
from avelib.eval.tasks import ENCODER_LABELS, weak_label
from avelib.report import blocks as B
from avelib.report.differences import CROSSMODAL, SUPERVISED, VIDEOS_SEEDS, WEAK, Difference, differences

LEGEND = (f"Brackets: 95 % CIs over {VIDEOS_SEEDS} (crossed bootstrap). A difference is in points, paired on the same "
          "test videos, and reads full model − other: positive = AVE-CLIP (or the setting named first) higher; "
          "resolved only where its CI excludes 0.")


def _accuracy(row: Mapping[str, Any]) -> str:
    """'80.25 % [76.15, 84.08]' of a headline row."""
    low, high = row.get("ci_low"), row.get("ci_high")
    ci = "" if low is None else f" [{100 * low:.2f}, {100 * high:.2f}]"
    return f"{100 * row['test_accuracy']:.2f} %{ci}"


def _versus(subject: str, diffs: Sequence[Difference], drop: str = "") -> str:
    """'; vs B +3.30 [+0.91, +5.74], resolved' for each difference with `subject` as a ('A − this' with it as b);
    `drop`: a suffix every name shares, left out."""
    def name(label: str) -> str:
        return label.removesuffix(drop)

    return "".join(f"; {f'vs {name(d.b)}' if d.a == subject else f'{name(d.a)} − this'} "
                   f"{interval_text(d.difference, d.ci)}, {d.short_verdict}" for d in diffs)


def _supervised(numbers: Mapping[str, Any], diffs: Sequence[Difference]) -> str | None:
    main = numbers.get("main")
    if not main:
        return None
    baselines = [d for d in diffs if d.task == SUPERVISED and d.a == FULL_MODEL]
    return f"AVE-CLIP {_accuracy(main['aveclip'])} segment accuracy{_versus(FULL_MODEL, baselines)}."


def _weak(numbers: Mapping[str, Any], diffs: Sequence[Difference]) -> str | None:
    """The weak AVE-CLIP run on the main run's towers and its comparisons within that tower set."""
    runs = numbers.get("weak") or {}
    encoder = next((e for e in ("finetuned", "release") if f"aveclip_{e}" in runs), None)
    if encoder is None:
        return None
    label, towers = weak_label("aveclip", encoder), f" ({ENCODER_LABELS[encoder]})"
    mine = [d for d in diffs if d.task == WEAK and label in (d.a, d.b) and d.tower_runs is None]
    return (f"AVE-CLIP trained on video-level labels only{towers}, {_accuracy(runs[f'aveclip_{encoder}'])}"
            f"{_versus(label, mine, towers)}.")


def _crossmodal(numbers: Mapping[str, Any], diffs: Sequence[Difference]) -> str | None:
    """The learned method of the first encoder against chance, both directions."""
    encoders = numbers.get("crossmodal") or {}
    encoder = next((e for e in ("finetuned", *encoders) if encoders.get(e, {}).get("learned_a2v")), None)
    if encoder is None:
        return None
    rows = encoders[encoder]
    versus = [f"{d.a.split()[0]} {interval_text(d.difference, d.ci)}, {d.short_verdict}" for d in diffs
              if d.task == CROSSMODAL and d.a.endswith(f"learned ({encoder})") and d.b == "chance"]
    against = f"; learned − chance: {'; '.join(versus)}" if versus else ""
    return (f"learned embedding ({ENCODER_LABELS.get(encoder, encoder)}), exact-start accuracy A2V "
            f"{_accuracy(rows['learned_a2v'])}, V2A {_accuracy(rows['learned_v2a'])}, chance "
            f"{100 * rows['chance']['test_accuracy']:.2f} %{against}.")


def results_title(reports: Path) -> str:
    """'Results on <the dataset of metrics.json>, not on real AVE'."""
    path = reports / "metrics.json"
    return f"Results on {load_metrics(path)['dataset']}, not on real AVE" if path.is_file() else "Results"


def summary(reports: Path) -> list[B.Block]:
    """One sentence per task whose result file exists, and the legend of their brackets."""
    numbers, diffs = headline(reports), differences(reports)
    sentences = [(f"{task}:", s) for task, s in ((SUPERVISED, _supervised(numbers, diffs)), (WEAK, _weak(numbers, diffs)),
                                                 (CROSSMODAL, _crossmodal(numbers, diffs))) if s]
    return [B.items(sentences, "summary"), B.text(LEGEND, "cap")] if sentences else []
