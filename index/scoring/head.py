"""A learned linear head over embeddings: class-balanced multinomial logistic regression, fitted in numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from index.fits import cached_fit, fit_key
from index.scoring.functions import Matrix, softmax
from index.types import Vectors

FIT_FORMAT = 1
"""Part of a cached head's key (`index.fits`): bump it when `fit_linear_head` computes anything differently."""


@dataclass(frozen=True, slots=True)
class LinearHead:
    """p(label | x) = softmax(x @ weights + bias); rows of `weights` are per input dim, columns per label."""

    weights: NDArray[np.float32]
    bias: NDArray[np.float32]

    def predict(self, vectors: Vectors) -> Matrix:
        return softmax(vectors @ self.weights + self.bias)


@dataclass(frozen=True, slots=True)
class Boundary:
    """Weigh the head's rows by how mixed their neighbourhood is: a row gets 1 + weight x (share of its k nearest
    exemplars on the other side of safe / unsafe). Benign look-alikes sit among their unsafe twins ("dispose of
    medical waste" next to "illegally dispose of hazardous waste"), where a label-balanced fit lets the many unsafe
    rows around them win; weighing the boundary up makes the head spend its capacity on the intent that separates
    them rather than on the topic they share."""

    safe_column: int
    weight: float
    k: int = 16


def boundary_weights(vectors: Vectors, label_idx: NDArray[np.int64], boundary: Boundary) -> NDArray[np.float64]:
    """1 + weight x (share of each row's k nearest other rows whose safe/unsafe side differs from its own)."""
    import faiss  # the index library's search; imported here so the head module stays light to import

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    k = min(boundary.k, len(x) - 1)
    if k < 1:
        return np.ones(len(x))
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    _, found = flat.search(x, k + 1)
    rows = np.arange(len(x))[:, None]
    # drop each row itself (it is usually, not always, first: duplicates tie)
    others = np.where(found == rows, -1, found)
    unsafe = label_idx != boundary.safe_column
    mixed = np.zeros(len(x))
    counted = np.zeros(len(x))
    for j in range(k + 1):
        col = others[:, j]
        valid = (col >= 0) & (counted < k)
        mixed += valid & (unsafe[np.maximum(col, 0)] != unsafe)
        counted += valid
    return 1.0 + boundary.weight * mixed / np.maximum(counted, 1.0)


def fit_linear_head_cached(
    vectors: Vectors,
    label_idx: NDArray[np.int64],
    n_labels: int,
    l2: float,
    epochs: int,
    cache: object | None,
    boundary: Boundary | None = None,
) -> LinearHead:
    """`fit_linear_head`, taken from `cache` (an `index.fits.FitCache`) when the same inputs were fitted before:
    the fit is a pure function of them, and ~65 s of a build on the 30k seed exemplars on a loaded 2-core machine.
    `boundary`: weigh rows near the safe/unsafe boundary up (`boundary_weights`); None or weight 0: uniform."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    idx = np.ascontiguousarray(label_idx, dtype=np.int64)
    parts: tuple[object, ...] = (n_labels, float(l2), int(epochs), x, idx)
    if boundary is not None and boundary.weight > 0:
        parts += (boundary.safe_column, float(boundary.weight), int(boundary.k))
    key = fit_key(f"linear-head/{FIT_FORMAT}", np.__version__, *parts)

    def fit() -> dict[str, NDArray[np.generic]]:
        extra = boundary_weights(x, idx, boundary) if boundary is not None and boundary.weight > 0 else None
        head = fit_linear_head(x, idx, n_labels, l2=l2, epochs=epochs, row_weights=extra)
        return {"weights": head.weights, "bias": head.bias}

    arrays = cached_fit(cache, key, fit)
    return LinearHead(arrays["weights"].astype(np.float32), arrays["bias"].astype(np.float32))


def fit_linear_head(
    vectors: Vectors,
    label_idx: NDArray[np.int64],
    n_labels: int,
    l2: float = 1e-3,
    epochs: int = 300,
    learning_rate: float = 0.05,
    seed: int = 0,
    row_weights: NDArray[np.floating] | None = None,
) -> LinearHead:
    """Fit a class-balanced softmax regression with full-batch Adam (deterministic for a given input).

    Class balance matters: sources are uneven, and an unbalanced head learns the source mix, not the categories.
    Labels without examples get a large negative bias so they are never predicted. `row_weights` multiply each
    row's class-balanced weight (each label keeps its total weight).
    """
    n, dim = vectors.shape
    x = vectors.astype(np.float64)
    counts = np.bincount(label_idx, minlength=n_labels).astype(np.float64)
    present = counts > 0
    if row_weights is None:
        sample_w = (n / (present.sum() * np.maximum(counts, 1.0)))[label_idx]
    else:
        # within each label the rows share its weight in proportion to `row_weights`
        rw = np.asarray(row_weights, dtype=np.float64)
        totals = np.bincount(label_idx, weights=rw, minlength=n_labels)
        sample_w = rw / np.maximum(totals, 1e-12)[label_idx]
    sample_w /= sample_w.sum()
    onehot = np.zeros((n, n_labels))
    onehot[np.arange(n), label_idx] = 1.0
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.01, size=(dim, n_labels))
    b = np.zeros(n_labels)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad_z = (p - onehot) * sample_w[:, None]
        g_w = x.T @ grad_z + l2 * w
        g_b = grad_z.sum(axis=0)
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w**2
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b**2
        corr1, corr2 = 1 - beta1**step, 1 - beta2**step
        w -= learning_rate * (m_w / corr1) / (np.sqrt(v_w / corr2) + eps)
        b -= learning_rate * (m_b / corr1) / (np.sqrt(v_b / corr2) + eps)
    b[~present] = -1e4
    return LinearHead(w.astype(np.float32), b.astype(np.float32))
