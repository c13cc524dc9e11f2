"""Atomic output: a stage either completes or leaves nothing that looks complete.

`atomic_path` writes a file or directory through a temp path; `resumable_dir` builds a directory in
`<out>.partial/`, which a rerun with the same settings continues, and renames it onto `<out>` when done.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and for directories (whatever the block creates at the temp path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"{path}: the writer produced nothing at {target}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically, pretty-printed and key-sorted for stable diffs."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path}: not found (has the stage that writes it run?)") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV (header row first) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)


PARTIAL_SUFFIX = ".partial"
PARTIAL_RECORD = "partial.json"


def partial_dir(out: str | Path) -> Path:
    """Where `out` is built: its sibling `<out>.partial` (never named like a finished output)."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def resumable_dir(out: str | Path, record: Any) -> Iterator[tuple[Path, bool]]:
    """Yield (work dir, resumed): build directory `out` in `<out>.partial/`.

    A partial dir whose `partial.json` equals `record` (the settings and inputs of the work) is
    continued (resumed = True); any other is deleted first. When the block succeeds the work dir is
    renamed onto `out`; when it fails or is killed it stays, so a rerun continues it.
    """
    out, work = Path(out), partial_dir(out)
    normal = json.loads(json.dumps(record, sort_keys=True))
    resumed = work.is_dir() and (work / PARTIAL_RECORD).is_file() and _read_record(work) == normal
    if not resumed:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        write_json(normal, work / PARTIAL_RECORD)
    yield work, resumed
    (work / PARTIAL_RECORD).unlink()
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    os.replace(work, out)


def _read_record(work: Path) -> Any:
    try:
        return json.loads((work / PARTIAL_RECORD).read_text())
    except json.JSONDecodeError:
        return None
