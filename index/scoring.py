"""Pure score functions: kNN label distribution, centroid similarities, open-set topic scores, fusion.

All similarities are cosines of L2-normalised vectors (inner products) in [-1, 1]. Probabilities are per row and
sum to 1 over the labels they cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from index.types import Vectors

Matrix = NDArray[np.float32]
LabelIdx = NDArray[np.int64]


def knn_distribution(sims: Matrix, label_idx: LabelIdx, n_labels: int, temperature: float) -> Matrix:
    """Similarity-weighted vote of the top-k neighbours, as a distribution over labels.

    Args:
        sims: (n, k) neighbour similarities; -inf marks an empty slot.
        label_idx: (n, k) label index of each neighbour; -1 marks a neighbour that does not vote.
        n_labels: number of labels.
        temperature: softness of the weights exp(sim / temperature); small = nearest neighbour dominates.

    Returns:
        (n, n_labels) rows summing to 1; a row with no voting neighbour is uniform.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    valid = (label_idx >= 0) & np.isfinite(sims)
    safe_sims = np.where(valid, sims, -np.inf)
    row_max = np.max(safe_sims, axis=1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    # invalid slots get exp(-inf) = 0; valid ones are <= 0 before exp, so nothing overflows in float32
    shifted = np.where(valid, sims.astype(np.float64) - row_max, -np.inf)
    weights = np.exp(shifted / temperature)
    out = np.zeros((sims.shape[0], n_labels), dtype=np.float64)
    rows = np.repeat(np.arange(sims.shape[0]), sims.shape[1])
    np.add.at(out, (rows, np.where(valid, label_idx, 0).ravel()), weights.ravel())
    totals = out.sum(axis=1, keepdims=True)
    empty = totals[:, 0] == 0
    out[empty] = 1.0
    totals[empty] = n_labels
    return np.asarray(out / totals, dtype=np.float32)


def centroids(vectors: Vectors, label_idx: LabelIdx, n_labels: int) -> Matrix:
    """L2-normalised mean vector per label; a label without vectors gets a zero row (similarity 0 to anything)."""
    sums = np.zeros((n_labels, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, label_idx, vectors.astype(np.float64))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(sums / norms, dtype=np.float32)


def softmax(logits: Matrix, temperature: float = 1.0) -> Matrix:
    """Row-wise softmax of logits / temperature."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


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

    `head` is the topic's learned head evaluated on the queries (`index.topic_head`: about +1 on the topic, -1 on
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


def fuse(parts: list[tuple[float, Matrix]]) -> Matrix:
    """Weighted mean of distributions with non-negative weights (normalised to sum 1)."""
    total = sum(w for w, _ in parts)
    if total <= 0 or any(w < 0 for w, _ in parts):
        raise ValueError("fusion weights must be non-negative with a positive sum")
    out = np.zeros_like(parts[0][1], dtype=np.float64)
    for w, p in parts:
        out += (w / total) * p
    return np.asarray(out, dtype=np.float32)


def logit(p: NDArray[np.float64] | float, eps: float = 1e-6) -> NDArray[np.float64]:
    p_arr = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.asarray(np.log(p_arr / (1 - p_arr)), dtype=np.float64)


def sigmoid(x: NDArray[np.float64] | float) -> NDArray[np.float64]:
    # exp of a non-positive number only: no overflow warning for large |x| (Platt can push logits far out)
    z = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.asarray(np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)), dtype=np.float64)
