"""Pure score functions: kNN label distribution, centroid similarities, softmax, fusion, logit/sigmoid.

All similarities are cosines of L2-normalised vectors (inner products) in [-1, 1]. Probabilities are per row and
sum to 1 over the labels they cover.
"""

from __future__ import annotations

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
    # one bincount over (row, label) cells: the weights are added in the same order as np.add.at adds them, in
    # float64 (bit-identical, tested), at a fraction of np.add.at's cost
    rows = np.repeat(np.arange(sims.shape[0]) * n_labels, sims.shape[1])
    cells = rows + np.where(valid, label_idx, 0).ravel()
    out = np.bincount(cells, weights=weights.ravel(), minlength=sims.shape[0] * n_labels).reshape(-1, n_labels)
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
