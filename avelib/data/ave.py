"""AVE annotations, categories, per-segment labels and train/val/test splits.

The file format (`Category&VideoID&Quality&StartTime&EndTime`, event covers seconds
[StartTime, EndTime)) and the class order follow the original release; see
shared/spec/ave-dataset.md.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CATEGORIES: tuple[str, ...] = (
    "Church bell",
    "Male speech, man speaking",
    "Bark",
    "Fixed-wing aircraft, airplane",
    "Race car, auto racing",
    "Female speech, woman speaking",
    "Helicopter",
    "Violin, fiddle",
    "Flute",
    "Ukulele",
    "Frying (food)",
    "Truck",
    "Shofar",
    "Motorcycle",
    "Acoustic guitar",
    "Train horn",
    "Clock",
    "Banjo",
    "Goat",
    "Baby cry, infant cry",
    "Bus",
    "Chainsaw",
    "Cat",
    "Horse",
    "Toilet flush",
    "Rodents, rats, mice",
    "Accordion",
    "Mandolin",
)
BACKGROUND = 28  # class index of a segment without an audio-visual event
NUM_CLASSES = 29  # 28 event classes + background
NUM_SEGMENTS = 10  # one-second segments per video

HEADER = "Category&VideoID&Quality&StartTime&EndTime"
SPLIT_FILES: dict[str, str] = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
_CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}


def label_name(label: int, width: int | None = None) -> str:
    """Name of a class index 0..28 ("background" for 28); cut to `width` characters (with "…") when given."""
    if not 0 <= int(label) < NUM_CLASSES:
        raise ValueError(f"class index {label} is outside 0..{NUM_CLASSES - 1}")
    name = "background" if int(label) == BACKGROUND else CATEGORIES[int(label)]
    return name if width is None or len(name) <= width else name[: width - 1] + "…"


@dataclass(frozen=True)
class Record:
    """One annotated 10-s sample: its event class covers seconds [start, end)."""

    category: str
    video_id: str
    quality: str
    start: int
    end: int

    @property
    def label(self) -> int:
        return _CATEGORY_INDEX[self.category]

    def line(self) -> str:
        """The record in the file format (without newline)."""
        return f"{self.category}&{self.video_id}&{self.quality}&{self.start}&{self.end}"


def parse_line(line: str, where: str) -> Record:
    """Parse one annotation line; `where` ("file:line") names it in errors."""
    parts = line.split("&")
    if len(parts) != 5:
        raise ValueError(f"{where}: malformed line (expected 5 '&'-separated fields, got {len(parts)}): {line!r}")
    category, video_id, quality, start_s, end_s = (p.strip() for p in parts)
    if category not in _CATEGORY_INDEX:
        raise ValueError(f"{where}: unknown category {category!r}")
    if not video_id:
        raise ValueError(f"{where}: empty video id")
    try:
        start, end = int(start_s), int(end_s)
    except ValueError:
        raise ValueError(f"{where}: start/end times must be integers, got {start_s!r}, {end_s!r}") from None
    if not (0 <= start <= NUM_SEGMENTS and 0 <= end <= NUM_SEGMENTS):
        raise ValueError(f"{where}: times {start}..{end} are outside 0..{NUM_SEGMENTS}")
    if start > end:
        raise ValueError(f"{where}: start {start} > end {end}")
    return Record(category, video_id, quality, start, end)


def read_annotations(path: str | Path) -> list[Record]:
    """Read an Annotations.txt / split file (with or without its header line)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e})") from None
    return parse_annotations(text, str(path))


def parse_annotations(text: str, where: str) -> list[Record]:
    """Records of an annotation text; errors name `where` and the line number."""
    records = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue  # tolerate blank lines (e.g. a trailing one)
        if lineno == 1 and line == HEADER:
            continue
        records.append(parse_line(line, f"{where}:{lineno}"))
    return records


def segment_labels(records: list[Record]) -> np.ndarray:
    """int64 [N,10]: event class on seconds [start, end), BACKGROUND elsewhere."""
    out = np.full((len(records), NUM_SEGMENTS), BACKGROUND, dtype=np.int64)  # [N,10]
    for i, r in enumerate(records):
        out[i, r.start : r.end] = r.label
    return out


def one_hot(labels: np.ndarray) -> np.ndarray:
    """float32 [N,10,29] one-hot of segment labels [N,10]."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]  # [N,10,29]


def event_mask(labels: np.ndarray) -> np.ndarray:
    """float32 [N,10]: 1 where the segment holds an event, 0 on background."""
    return (np.asarray(labels) != BACKGROUND).astype(np.float32)


def video_labels(records: list[Record]) -> np.ndarray:
    """float32 [N,29] video-level one-hot of each record's category (as mil_labels.h5)."""
    out = np.zeros((len(records), NUM_CLASSES), dtype=np.float32)  # [N,29]
    out[np.arange(len(records)), [r.label for r in records]] = 1.0
    return out


def match_splits(records: list[Record], split_records: dict[str, list[Record]], root: Path) -> dict[str, np.ndarray]:
    """Map split records to indices into `records` by whole-record equality.

    A record that occurs several times (same line) is matched in order of occurrence: the
    k-th time it appears across the splits (train, then val, then test) takes its k-th index
    in Annotations, so the result is deterministic.
    """
    free: dict[Record, deque[int]] = defaultdict(deque)
    for i, r in enumerate(records):
        free[r].append(i)
    out = {}
    for name, recs in split_records.items():
        idx = []
        for j, r in enumerate(recs):
            if not free[r]:
                seen = "not in" if all(x != r for x in records) else "used more often than it occurs in"
                raise ValueError(f"{root / SPLIT_FILES[name]}: record {j + 1} ({r.line()!r}) is {seen} Annotations.txt")
            idx.append(free[r].popleft())
        out[name] = np.asarray(idx, dtype=np.int64)
    return out


@dataclass(frozen=True)
class AVEDataset:
    """An AVE-layout dataset root: records (Annotations order), labels [N,10], splits."""

    root: Path
    records: list[Record]
    labels: np.ndarray  # int64 [N,10]
    splits: dict[str, np.ndarray]  # "train"/"val"/"test" -> int64 indices into records

    def video_path(self, i: int) -> Path:
        return self.root / "AVE" / f"{self.records[i].video_id}.mp4"

    def __len__(self) -> int:
        return len(self.records)


def load_dataset(root: str | Path) -> AVEDataset:
    """Read `<root>/Annotations.txt` and the three split files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset root not found")
    records = read_annotations(root / "Annotations.txt")
    split_records = {name: read_annotations(root / fname) for name, fname in SPLIT_FILES.items()}
    splits = match_splits(records, split_records, root)
    return AVEDataset(root=root, records=records, labels=segment_labels(records), splits=splits)
