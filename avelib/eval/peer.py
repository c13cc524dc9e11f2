"""The peers' protocol, measured beside ours: the epoch and post-processing L chosen on the TEST split.

Every peer of the field (AVEL, PSP, CMBS, CACE-Net, LAVisH, DG-SCT) keeps the epoch with the best test
accuracy (spec/ave-clip.md). A run given a `TestSelection` records, epoch by epoch, the best test
accuracy any (epoch, L) reaches. It is reported as "test-selected (peer protocol)" with its paired
inflation over the validation-selected result of the same seeds, never as the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from avelib.eval import metrics as M
from avelib.eval.claims import ci_text, p_text, points
from avelib.eval import stats
from avelib.eval.postprocess import smooth_predictions

LABEL = "test-selected (peer protocol)"


@dataclass
class TestSelection:
    """The best (epoch, L) on the test split of one training run so far."""

    rows: np.ndarray  # int [Nte] test rows of the feature arrays
    labels: np.ndarray  # int [Nte,10] their labels
    candidates: tuple[int, ...]  # the post-processing L candidates
    accuracy: float = -1.0
    epoch: int = -1
    max_len: int = 0
    correct: list[int] = field(default_factory=list)  # correct seconds per test video at that choice

    def update(self, epoch: int, pred: np.ndarray) -> None:
        """Raw test predictions int [Nte,10] of `epoch`; the earliest best (epoch, L) wins ties."""
        for max_len in self.candidates:
            post = smooth_predictions(pred, max_len)  # [Nte,10]
            accuracy = M.segment_accuracy(post, self.labels)
            if accuracy > self.accuracy:
                self.accuracy, self.epoch, self.max_len = accuracy, epoch, max_len
                self.correct = (post == self.labels).sum(axis=1).tolist()

    def state(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "epoch": self.epoch, "max_len": self.max_len, "correct": self.correct}

    def load(self, state: Mapping[str, Any]) -> None:
        self.accuracy, self.epoch, self.max_len = state["accuracy"], state["epoch"], state["max_len"]
        self.correct = list(state["correct"])


def summary(selections: Sequence[TestSelection], validation_selected: Mapping[str, Any]) -> dict[str, Any]:
    """The `test_selected` entry of a run's metrics: accuracy over seeds with its CI, the chosen epochs and
    L, and `inflation`: the paired difference test-selected - validation-selected (avelib.eval.stats)."""
    correct = [s.correct for s in selections]
    return {
        "label": LABEL,
        "test_accuracy": M.summarize([s.accuracy for s in selections]),
        "test_accuracy_ci": stats.accuracy_ci(stats.per_video_accuracy(correct)),
        "epoch": [s.epoch for s in selections],
        "max_len": [s.max_len for s in selections],
        "inflation": stats.compare_runs({"test_correct_seconds": correct}, validation_selected),
    }


PEER_HEADER = ["run", "ours: validation-selected (%)", f"{LABEL} (%)", "95 % CI", "inflation, points [95 % CI]", "p"]
PEER_CAPTION = ("The peers' protocol, measured on the same runs: the epoch and post-processing L with the best "
                "TEST accuracy, as the public code of AVEL, PSP, CMBS, CACE-Net, LAVisH and DG-SCT selects. It is "
                "not a result: 'inflation' is how much that selection adds to the validation-selected number.")


def peer_rows(runs: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """A table row per run (label -> metrics) that recorded `test_selected`."""
    rows = []
    for label, run in runs.items():
        selected = run.get("test_selected")
        if not selected:
            continue
        inflation = selected["inflation"]
        low, high = inflation["ci"]
        rows.append([label, f"{100 * run['test_accuracy']['mean']:.2f}", f"{100 * selected['test_accuracy']['mean']:.2f}",
                     ci_text(selected), f"{points(inflation['difference'])} [{points(low)}, {points(high)}]",
                     p_text(inflation["p_value"])])
    return rows
