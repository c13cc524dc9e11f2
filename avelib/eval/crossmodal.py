"""Cross-modality localization (AVEL's A2V / V2A protocol) and its exact chance level.

For a test video whose event lasts l seconds with 0 < l < 10, the event seconds of one modality are
the query. It slides over the other modality's 10 seconds: at offset p (0 <= p <= 10 - l) the score
is the sum over k of sim(query second start + k, target second p + k). The predicted start is the
offset of the highest score; **ties go to the earliest offset** (AVEL's np.argmin over distances
does the same). A video counts as correct only if the predicted start equals the true one.

Similarities are given as a matrix per video, sim[n, i, j] = similarity of query-modality second i
and target-modality second j (higher = more alike; a distance d enters as -d). For A2V the query is
audio: sim_a2v[n, i, j] = s(audio_i, visual_j); V2A uses its transpose.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avelib.data.ave import BACKGROUND, NUM_SEGMENTS
from avelib.eval import stats


def event_spans(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) int64 [N] of each video's event from segment labels [N,10] (length 0: none).

    Raises on a video whose event seconds are not one contiguous run (the AVE annotation has one).
    """
    event = np.asarray(labels) != BACKGROUND  # [N,10]
    lengths = event.sum(axis=1)  # [N]
    starts = np.where(lengths > 0, event.argmax(axis=1), 0)  # [N]
    for n in np.flatnonzero(lengths):
        if not event[n, starts[n] : starts[n] + lengths[n]].all():
            raise ValueError(f"video row {n}: event seconds {np.flatnonzero(event[n]).tolist()} are not contiguous")
    return starts.astype(np.int64), lengths.astype(np.int64)


def eligible(lengths: np.ndarray) -> np.ndarray:
    """bool [N]: videos the protocol scores (an event shorter than the video, and at least 1 s)."""
    lengths = np.asarray(lengths)
    return (lengths > 0) & (lengths < NUM_SEGMENTS)


def predicted_starts(sim: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 [N]: the offset with the highest summed similarity (earliest on ties) for each video.

    sim: [N,10,10] query x target similarities; starts, lengths: [N] of eligible videos.
    """
    sim = np.asarray(sim, dtype=np.float64)
    out = np.empty(len(starts), dtype=np.int64)
    for n, (s, l) in enumerate(zip(np.asarray(starts), np.asarray(lengths))):
        if not 0 < l < NUM_SEGMENTS:
            raise ValueError(f"video {n}: event length {l} is outside the protocol's 1..{NUM_SEGMENTS - 1}")
        k = np.arange(l)
        scores = np.array([sim[n, s + k, p + k].sum() for p in range(NUM_SEGMENTS - l + 1)])  # [11-l]
        out[n] = int(np.argmax(scores))  # argmax returns the first maximum: the earliest offset
    return out


def chance_per_video(lengths: np.ndarray) -> np.ndarray:
    """float [N]: the probability that a uniformly random offset is the true start, 1 / (11 - l)."""
    return 1.0 / (NUM_SEGMENTS - np.asarray(lengths, dtype=np.float64) + 1.0)


def cosine_similarity(query: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[N,10,10] cosine similarity of every query second with every target second; inputs [N,10,E]."""
    q = np.asarray(query, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-12)
    return np.einsum("nie,nje->nij", q, t)


def both_directions(sim_a2v: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """{"a2v", "v2a"}: bool [N] correct per eligible video, from audio x visual similarities [N,10,10]."""
    v2a = np.swapaxes(np.asarray(sim_a2v), 1, 2)  # [N,10,10]: visual query x audio target
    return {"a2v": predicted_starts(sim_a2v, starts, lengths) == starts,
            "v2a": predicted_starts(v2a, starts, lengths) == starts}


def summarize_direction(correct: np.ndarray) -> dict[str, Any]:
    """{accuracy {mean,std,per_seed}, ci, correct} of 0/1 scores [S,N] (S seeds, N eligible videos)."""
    scores = np.asarray(correct, dtype=np.float64)
    per_seed = scores.mean(axis=1)
    return {"accuracy": {"mean": float(per_seed.mean()), "std": float(per_seed.std()),
                         "per_seed": per_seed.tolist()},
            "ci": stats.accuracy_ci(scores)["ci"], "correct": scores.astype(int).tolist()}


def chance_summary(lengths: np.ndarray) -> dict[str, Any]:
    """The exact chance accuracy of the protocol on these videos, and its per-video values."""
    p = chance_per_video(lengths)
    return {"accuracy": float(p.mean()), "per_video": p.tolist()}


def versus(a: dict[str, Any], b: np.ndarray | dict[str, Any]) -> dict[str, Any]:
    """Paired difference a - b over the same videos (b: another summary, or per-video chance values)."""
    other = np.asarray(b["correct"] if isinstance(b, dict) else [b], dtype=np.float64)  # [Sb,N]
    return stats.paired_difference(np.asarray(a["correct"], dtype=np.float64), other)
