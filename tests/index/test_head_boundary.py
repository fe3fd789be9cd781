"""The linear head's boundary weighting (index.scoring.head.Boundary): rows among the other side's neighbours weigh
more, each label keeps its total weight, and a benign look-alike inside an unsafe cluster is pulled to `safe`."""

from __future__ import annotations

import numpy as np

from index.scoring.head import Boundary, boundary_weights, fit_linear_head, fit_linear_head_cached
from tests.index.test_fits import DictFits


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def two_sides(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column 0 = safe (around e0, plus look-alikes inside the unsafe cluster), column 1 = unsafe (around e1)."""
    rng = np.random.default_rng(seed)
    dim = 8
    safe = np.eye(dim)[0] + 0.1 * rng.normal(size=(60, dim))
    unsafe = np.eye(dim)[1] + 0.1 * rng.normal(size=(60, dim))
    # look-alikes: the unsafe topic with a small step towards an "intent" axis the unsafe rows lack
    look = np.eye(dim)[1] + 0.35 * np.eye(dim)[2] + 0.05 * rng.normal(size=(6, dim))
    vectors = unit(np.concatenate([safe, unsafe, look]))
    labels = np.asarray([0] * 60 + [1] * 60 + [0] * 6, dtype=np.int64)
    return vectors, labels


def test_weights_count_the_other_side_among_the_nearest() -> None:
    vectors, labels = two_sides()
    weights = boundary_weights(vectors, labels, Boundary(safe_column=0, weight=4.0, k=8))
    # a plain safe row has only safe neighbours; of a look-alike's 8 nearest, 5 are the other look-alikes and 3 are
    # unsafe rows: 1 + 4 x 3/8
    assert np.allclose(weights[:60], 1.0)
    np.testing.assert_allclose(weights[120:], 2.5)
    # unsafe rows next to the look-alikes weigh more than the rest of their cluster, never more than 1 + weight
    assert weights[60:120].max() > 1.0
    assert weights.max() <= 5.0
    assert np.allclose(boundary_weights(vectors, labels, Boundary(0, 0.0, k=8)), 1.0)


def test_boundary_weighting_pulls_look_alikes_to_safe_and_keys_the_cache() -> None:
    vectors, labels = two_sides()
    queries = two_sides(seed=1)[0][120:]  # unseen look-alikes
    plain = fit_linear_head(vectors, labels, 2, epochs=200)
    weights = boundary_weights(vectors, labels, Boundary(0, 8.0, k=8))
    weighted = fit_linear_head(vectors, labels, 2, epochs=200, row_weights=weights)
    assert weighted.predict(queries)[:, 0].mean() > plain.predict(queries)[:, 0].mean() + 0.05
    # uniform row weights are the plain fit: each label keeps its class-balanced total
    uniform = fit_linear_head(vectors, labels, 2, epochs=200, row_weights=np.ones(len(labels)))
    np.testing.assert_allclose(uniform.weights, plain.weights, rtol=1e-5, atol=1e-6)

    fits = DictFits()
    fit_linear_head_cached(vectors, labels, 2, 1e-3, 50, fits)
    fit_linear_head_cached(vectors, labels, 2, 1e-3, 50, fits, Boundary(0, 0.0))  # weight 0 is the plain fit
    assert fits.hits == 1
    fit_linear_head_cached(vectors, labels, 2, 1e-3, 50, fits, Boundary(0, 4.0))
    fit_linear_head_cached(vectors, labels, 2, 1e-3, 50, fits, Boundary(0, 2.0))
    assert fits.hits == 1 and len(fits.data) == 3
