"""Cross-modal retrieval recall@k with grouped positives, its chance level and a bootstrap CI over groups."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def retrieval_recall(
    a_emb: torch.Tensor, i_emb: torch.Tensor, ks: tuple[int, ...], groups: np.ndarray | None = None
) -> dict[str, Any]:
    """Recall@k both ways: `a2i_r{k}`, `i2a_r{k}`, chance level `chance_r{k}` and `a2i_r1_ci`.

    Row m of both embeddings is one pair; `groups[m]` names its video (default: every row its own).
    A query hits at k when a candidate of its own group is among its top k. The rank counts the
    other groups' candidates with an equal or higher cosine similarity than the best own-group one
    (ties count against the query, so collapsed embeddings score chance-or-worse, never 1.0).
    `a2i_r1_ci`: 95 % bootstrap interval of a2i R@1 over groups (videos); `a2i_r1_per_video`: each
    group's a2i R@1 (groups in sorted order), for paired comparisons of two epochs.
    """
    m = a_emb.shape[0]
    g = torch.as_tensor(np.arange(m) if groups is None else np.asarray(groups))  # [M]
    same = g[:, None] == g[None, :]  # [M,M]
    sim = F.normalize(a_emb.float(), dim=-1) @ F.normalize(i_emb.float(), dim=-1).T  # [M,M] rows audio, cols image
    rank_a2i = _group_rank(sim, same)  # [M]
    rank_i2a = _group_rank(sim.T, same.T)  # [M]
    own = same.sum(dim=1).double()  # [M] own-group candidates per query
    out: dict[str, Any] = {}
    for k in ks:
        out[f"a2i_r{k}"] = float((rank_a2i < k).float().mean())
        out[f"i2a_r{k}"] = float((rank_i2a < k).float().mean())
        out[f"chance_r{k}"] = float(_chance_at(own, m, k).mean())
    hits = (rank_a2i < 1).numpy()  # [M]
    out["a2i_r1_ci"] = _grouped_ci(hits, g.numpy())
    _, video = np.unique(g.numpy(), return_inverse=True)
    out["a2i_r1_per_video"] = (np.bincount(video, weights=hits) / np.bincount(video)).tolist()  # [G], sorted ids
    return out


def _group_rank(sim: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Per query row: other-group candidates scoring >= the best own-group candidate."""
    best_own = sim.masked_fill(~same, -torch.inf).max(dim=1).values  # [M]
    return ((sim >= best_own[:, None]) & ~same).sum(dim=1)


def _chance_at(own: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """P(a random ranking puts one of `own` of `m` candidates in the top k), per query."""
    miss = torch.ones_like(own)
    for j in range(min(k, m)):
        miss = miss * ((m - own - j).clamp(min=0) / (m - j))
    return 1.0 - miss


def _grouped_ci(hits: np.ndarray, groups: np.ndarray, confidence: float = 0.95) -> list[float]:
    """Bootstrap interval of the hit rate, resampling whole groups (queries of a video are not independent)."""
    from scipy.stats import bootstrap

    _, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=hits.astype(np.float64))  # [G]
    counts = np.bincount(inverse).astype(np.float64)  # [G]
    if len(sums) < 2:
        rate = float(sums.sum() / counts.sum())
        return [rate, rate]
    res = bootstrap((sums, counts), lambda s, c: s.sum() / c.sum(), paired=True, vectorized=False,
                    confidence_level=confidence, n_resamples=2000, method="percentile",
                    random_state=np.random.default_rng(0))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


# ----------------------------------------------------------------------------------------------------
# checkpoint / history files
