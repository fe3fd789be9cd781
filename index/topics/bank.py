"""Open-set topic scores: one topic against its examples (`topic_scores`), or every topic at once (`TopicBank`).

All similarities are cosines of L2-normalised vectors (inner products) in [-1, 1]; topic scores are not normalised
across topics (an unrelated text scores low however many topics exist).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from index.scoring.functions import Matrix
from index.types import Vectors


def topic_scores(
    queries: Vectors,
    positives: Vectors,
    allows: Vectors | None,
    top_m: int = 3,
    knn_weight: float = 0.5,
    allow_margin: float = 0.05,
    head: NDArray[np.float32] | None = None,
    head_weight: float = 0.0,
) -> Matrix:
    """Open-set score of each query for one topic (not normalised across topics).

    similarity = knn_weight * mean(top-m similarities to the topic's examples) + (1 - knn_weight) * cos(query, centroid)
    score = (1 - head_weight) * similarity + head_weight * head

    `head` is the topic's learned head evaluated on the queries (`index.topics.head`: about +1 on the topic, -1 on
    background text); without it the score is the similarity alone, a cosine. The score is scaled down to 0 as the
    nearest allow-example (hard negative) comes within `allow_margin` of the nearest positive: a text at least as
    close to an allow-example as to any positive never matches the topic. An unrelated text scores low no matter
    how many topics exist (no softmax over topics).

    Returns:
        (n,) float32 scores in [-1, 1].
    """
    sims = queries @ positives.T
    m = max(1, min(top_m, positives.shape[0]))
    top = -np.sort(-sims, axis=1)[:, :m]
    centroid = positives.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    cent = queries @ (centroid / norm if norm > 0 else centroid)
    score = knn_weight * top.mean(axis=1) + (1.0 - knn_weight) * cent
    if head is not None and head_weight > 0:
        score = (1.0 - head_weight) * score + head_weight * np.asarray(head, dtype=np.float32)
    if allows is not None and allows.shape[0] > 0:
        nearest_allow = (queries @ allows.T).max(axis=1)
        score = _suppress(score, top[:, 0], nearest_allow, allow_margin)
    return np.asarray(np.clip(score, -1.0, 1.0), dtype=np.float32)


def _suppress(
    score: NDArray[np.floating],
    nearest_pos: NDArray[np.floating],
    nearest_allow: NDArray[np.floating],
    allow_margin: float,
) -> NDArray[np.floating]:
    factor = np.clip((nearest_pos - nearest_allow) / allow_margin, 0.0, 1.0)
    return np.where(score > 0, score * factor, score)


@dataclass(frozen=True, slots=True)
class TopicBank:
    """Every topic's examples, centroid, allow-examples and head stacked, so that scoring a query against all topics
    costs a few matrix products instead of a Python loop over topics (`topic_score_matrix`).

    Each topic needs at least one positive. Build it with `TopicBank.stack`.
    """

    names: tuple[str, ...]
    positives: Vectors  # (P, d): topic 0's examples, then topic 1's, ...
    starts: NDArray[np.int64]  # (T + 1,) offsets of each topic's rows in `positives`
    centroids: Matrix  # (T, d) L2-normalised mean of each topic's examples
    allows: Vectors  # (A, d) allow-examples, topic by topic
    allow_starts: NDArray[np.int64]  # (T + 1,)
    head_weights: Matrix  # (d, T); a topic without a head has a zero column and head weight 0
    head_bias: Matrix  # (T,)
    head_mix: Matrix  # (T,) each topic's head weight

    @classmethod
    def stack(
        cls,
        names: Sequence[str],
        positives: Sequence[Vectors],
        allows: Sequence[Vectors],
        heads: Sequence[tuple[NDArray[np.float32], float] | None],
        head_weight: float,
        dim: int,
    ) -> TopicBank:
        """Stack per-topic arrays; `heads[t]` is (weights (d,), bias) or None for a topic scored by similarity."""
        if any(p.shape[0] == 0 for p in positives):
            raise ValueError("every topic in a TopicBank needs at least one positive")
        t = len(names)
        sizes = np.asarray([p.shape[0] for p in positives], dtype=np.int64)
        allow_sizes = np.asarray([a.shape[0] for a in allows], dtype=np.int64)
        weights = np.zeros((dim, t), dtype=np.float32)
        bias = np.zeros(t, dtype=np.float32)
        mix = np.zeros(t, dtype=np.float32)
        for i, head in enumerate(heads):
            if head is not None and head_weight > 0:
                weights[:, i], bias[i], mix[i] = head[0], head[1], head_weight
        cents = np.zeros((t, dim), dtype=np.float32)
        for i, p in enumerate(positives):
            c = p.mean(axis=0)
            norm = float(np.linalg.norm(c))
            cents[i] = c / norm if norm > 0 else c
        return cls(
            tuple(names),
            _rows(positives, dim),
            np.r_[0, np.cumsum(sizes)].astype(np.int64),
            cents,
            _rows(allows, dim),
            np.r_[0, np.cumsum(allow_sizes)].astype(np.int64),
            weights,
            bias,
            mix,
        )


def topic_score_matrix(
    queries: Vectors, bank: TopicBank, top_m: int = 3, knn_weight: float = 0.5, allow_margin: float = 0.05
) -> Matrix:
    """`topic_scores` for every topic of `bank` at once: (n, T) scores, column t equal to topic t's scores."""
    n, t = queries.shape[0], len(bank.names)
    if t == 0:
        return np.zeros((n, 0), dtype=np.float32)
    sims = queries @ bank.positives.T  # (n, P)
    sizes = np.diff(bank.starts)
    owner = np.repeat(np.arange(t), sizes)
    # sort each row by (topic, -similarity): topics stay in their column blocks, best match first within each
    order = np.argsort(owner[None, :] * 4.0 - sims.astype(np.float64), axis=1, kind="stable")
    ranked = np.take_along_axis(sims, order, axis=1)
    m = np.minimum(max(1, top_m), sizes)
    keep = (np.arange(owner.size) - bank.starts[owner]) < m[owner]
    top_mean = np.add.reduceat(np.where(keep, ranked, 0.0), bank.starts[:-1], axis=1) / m
    nearest_pos = ranked[:, bank.starts[:-1]]
    score = knn_weight * top_mean + (1.0 - knn_weight) * (queries @ bank.centroids.T)
    if bank.head_mix.any():
        head = queries @ bank.head_weights + bank.head_bias
        score = (1.0 - bank.head_mix) * score + bank.head_mix * head
    if bank.allows.shape[0]:
        allow_sizes = np.diff(bank.allow_starts)
        with_allows = np.flatnonzero(allow_sizes > 0)
        nearest_allow = np.full((n, t), -np.inf, dtype=np.float32)
        # allow rows are stored topic by topic, so the non-empty blocks are contiguous
        nearest_allow[:, with_allows] = np.maximum.reduceat(
            queries @ bank.allows.T, bank.allow_starts[with_allows], axis=1
        )
        score = _suppress(score, nearest_pos, nearest_allow, allow_margin)
    return np.asarray(np.clip(score, -1.0, 1.0), dtype=np.float32)


def _rows(parts: Sequence[Vectors], dim: int) -> Vectors:
    full = [p for p in parts if p.shape[0]]
    return np.concatenate(full, axis=0).astype(np.float32) if full else np.zeros((0, dim), dtype=np.float32)
