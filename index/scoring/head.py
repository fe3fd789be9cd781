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


def fit_linear_head_cached(
    vectors: Vectors, label_idx: NDArray[np.int64], n_labels: int, l2: float, epochs: int, cache: object | None
) -> LinearHead:
    """`fit_linear_head`, taken from `cache` (an `index.fits.FitCache`) when the same inputs were fitted before:
    the fit is a pure function of them, and ~65 s of a build on the 30k seed exemplars on a loaded 2-core machine."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    idx = np.ascontiguousarray(label_idx, dtype=np.int64)
    key = fit_key(f"linear-head/{FIT_FORMAT}", np.__version__, n_labels, float(l2), int(epochs), x, idx)

    def fit() -> dict[str, NDArray[np.generic]]:
        head = fit_linear_head(x, idx, n_labels, l2=l2, epochs=epochs)
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
) -> LinearHead:
    """Fit a class-balanced softmax regression with full-batch Adam (deterministic for a given input).

    Class balance matters: sources are uneven, and an unbalanced head learns the source mix, not the categories.
    Labels without examples get a large negative bias so they are never predicted.
    """
    n, dim = vectors.shape
    x = vectors.astype(np.float64)
    counts = np.bincount(label_idx, minlength=n_labels).astype(np.float64)
    present = counts > 0
    sample_w = (n / (present.sum() * np.maximum(counts, 1.0)))[label_idx]
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
