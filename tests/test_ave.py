"""AVE annotations/labels/splits: against the real release files and on small broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avelib.data import ave


@pytest.fixture(scope="module")
def real_dir(shared_dir: Path) -> Path:
    d = shared_dir / "data" / "ave"
    if not (d / "Annotations.txt").is_file():
        pytest.skip(f"{d}: real AVE annotation files are absent")
    return d


def _h5(path: Path, key: str) -> np.ndarray:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "r") as f:
        return f[key][()]


def test_constants() -> None:
    assert len(ave.CATEGORIES) == 28 and len(set(ave.CATEGORIES)) == 28
    assert ave.CATEGORIES[0] == "Church bell" and ave.CATEGORIES[27] == "Mandolin"
    assert (ave.BACKGROUND, ave.NUM_CLASSES, ave.NUM_SEGMENTS) == (28, 29, 10)


def test_real_annotations_and_labels(real_dir: Path) -> None:
    recs = ave.read_annotations(real_dir / "Annotations.txt")
    assert len(recs) == 4143
    assert recs[0] == ave.Record("Church bell", "RUhOCu3LNXM", "good", 0, 10) and recs[0].label == 0
    labels = ave.segment_labels(recs)
    assert labels.shape == (4143, 10) and labels.dtype == np.int64
    np.testing.assert_array_equal(ave.event_mask(labels), _h5(real_dir / "labels_closs.h5", "avadataset"))
    np.testing.assert_array_equal(ave.video_labels(recs), _h5(real_dir / "mil_labels.h5", "avadataset"))
    oh = ave.one_hot(labels)
    assert oh.shape == (4143, 10, 29) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.argmax(-1), labels)
    lengths = np.bincount([r.end - r.start for r in recs], minlength=11)
    assert lengths[10] == 2750 and lengths[0] == 1 and lengths[1] == 0
    # the class index is the order of first appearance in Annotations.txt
    first = list(dict.fromkeys(r.category for r in recs))
    assert tuple(first) == ave.CATEGORIES


def test_real_splits_equal_order_files(real_dir: Path, tmp_path: Path) -> None:
    # a dataset root with the release layout: Annotations.txt with the header as in the zip
    ann = (real_dir / "Annotations.txt").read_text()
    (tmp_path / "Annotations.txt").write_text(ave.HEADER + "\n" + ann)
    for fname in ave.SPLIT_FILES.values():
        (tmp_path / fname).write_text((real_dir / fname).read_text())
    ds = ave.load_dataset(tmp_path)
    assert len(ds) == 4143
    sizes = {k: len(v) for k, v in ds.splits.items()}
    assert sizes == {"train": 3339, "val": 402, "test": 402}
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(ds.splits[name], _h5(real_dir / f"{name}_order.h5", "order"))
    all_idx = np.concatenate(list(ds.splits.values()))
    assert len(np.unique(all_idx)) == 4143
    assert ds.video_path(0) == tmp_path / "AVE" / "RUhOCu3LNXM.mp4"
    # 46 samples share a video id with another category: ids alone are not unique
    assert len({r.video_id for r in ds.records}) == 4143 - 46


def _write(p: Path, lines: list[str]) -> Path:
    p.write_text("\n".join(lines) + "\n")
    return p


GOOD = "Bark&abc&good&2&7"


def test_header_optional(tmp_path: Path) -> None:
    a = ave.read_annotations(_write(tmp_path / "a.txt", [ave.HEADER, GOOD]))
    b = ave.read_annotations(_write(tmp_path / "b.txt", [GOOD]))
    assert a == b == [ave.Record("Bark", "abc", "good", 2, 7)]
    np.testing.assert_array_equal(ave.segment_labels(a)[0], [28, 28, 2, 2, 2, 2, 2, 28, 28, 28])


@pytest.mark.parametrize(
    "bad, cause",
    [
        ("Bark&abc&good&2", "malformed"),
        ("Bark&abc&good&2&7&x", "malformed"),
        ("Barking&abc&good&2&7", "unknown category"),
        ("Bark&abc&good&7&2", "start 7 > end 2"),
        ("Bark&abc&good&0&11", "outside 0..10"),
        ("Bark&abc&good&-1&3", "outside 0..10"),
        ("Bark&abc&good&a&3", "integers"),
        ("Bark&&good&1&3", "empty video id"),
    ],
)
def test_bad_lines_name_file_line_cause(tmp_path: Path, bad: str, cause: str) -> None:
    p = _write(tmp_path / "Annotations.txt", [ave.HEADER, GOOD, bad])
    with pytest.raises(ValueError, match=cause) as e:
        ave.read_annotations(p)
    assert f"{p}:3" in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        ave.read_annotations(tmp_path / "nope.txt")


def _root(tmp_path: Path, ann: list[str], train: list[str], val: list[str], test: list[str]) -> Path:
    _write(tmp_path / "Annotations.txt", [ave.HEADER, *ann])
    for name, lines in (("trainSet.txt", train), ("valSet.txt", val), ("testSet.txt", test)):
        _write(tmp_path / name, lines)
    return tmp_path


def test_splits_match_whole_records_and_duplicates(tmp_path: Path) -> None:
    a, b, c = "Bark&v1&good&0&10", "Cat&v1&good&0&10", "Bark&v2&good&3&5"
    # v1 reused with another category; record `c` appears twice in Annotations
    root = _root(tmp_path, [a, b, c, c], train=[c, b], val=[a], test=[c])
    ds = ave.load_dataset(root)
    assert ds.splits["train"].tolist() == [2, 1]
    assert ds.splits["val"].tolist() == [0]
    assert ds.splits["test"].tolist() == [3]
    assert all(v.dtype == np.int64 for v in ds.splits.values())


def test_split_record_not_in_annotations(tmp_path: Path) -> None:
    root = _root(tmp_path, ["Bark&v1&good&0&10"], train=["Bark&v1&good&0&9"], val=[], test=[])
    with pytest.raises(ValueError, match=r"trainSet.txt: record 1 .* not in Annotations"):
        ave.load_dataset(root)


def test_split_record_used_too_often(tmp_path: Path) -> None:
    a = "Bark&v1&good&0&10"
    root = _root(tmp_path, [a], train=[a], val=[a], test=[])
    with pytest.raises(ValueError, match=r"valSet.txt: record 1 .* more often"):
        ave.load_dataset(root)
