"""The built-in scorers: a kNN vote over the nearest exemplars, the nearest category centroid, a linear head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from index.scoring.base import Neighbours
from index.scoring.functions import Matrix, knn_distribution, softmax
from index.scoring.head import LinearHead, fit_linear_head_cached
from index.types import Vectors

if TYPE_CHECKING:
    from index.config import GuardConfig


class KnnScorer:
    """Similarity-weighted vote of the first k built-in neighbours (`knn_distribution`)."""

    name = "knn"

    def __init__(self, n_labels: int) -> None:
        self.n_labels = n_labels
        self.weight = 0.0
        self.temperature = 1.0

    def configure(self, config: GuardConfig) -> None:
        self.weight, self.temperature = config.weight_knn, config.knn_temperature

    def distribution(self, queries: Vectors, neighbours: Neighbours) -> Matrix:
        return knn_distribution(neighbours.sims, neighbours.label_idx, self.n_labels, self.temperature)


class CentroidScorer:
    """Softmax over the cosine to each label's centroid (the normalised mean of its exemplars), kept up to date as
    exemplars come and go: it holds the per-label sums, so an edit costs O(edited rows), not O(index)."""

    name = "centroid"

    def __init__(self, n_labels: int, dim: int) -> None:
        self.weight = 0.0
        self.temperature = 1.0
        self._sums = np.zeros((n_labels, dim), dtype=np.float64)
        self.centroids = np.zeros((n_labels, dim), dtype=np.float32)

    def configure(self, config: GuardConfig) -> None:
        self.weight, self.temperature = config.weight_centroid, config.centroid_temperature

    def add(self, columns: Sequence[int], vectors: Vectors) -> None:
        for column, vector in zip(columns, vectors, strict=True):
            self._sums[column] += vector
        self._refresh()

    def remove(self, columns: Sequence[int], vectors: Vectors) -> None:
        for column, vector in zip(columns, vectors, strict=True):
            self._sums[column] -= vector
        self._refresh()

    def _refresh(self) -> None:
        norms = np.linalg.norm(self._sums, axis=1, keepdims=True)
        self.centroids = np.where(norms > 1e-9, self._sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)

    def distribution(self, queries: Vectors, neighbours: Neighbours) -> Matrix:
        return softmax(queries @ self.centroids.T, self.temperature)


class HeadScorer:
    """A class-balanced softmax regression over the embeddings (`index.scoring.head`), fitted on the built-in
    exemplars; says nothing until fitted (or when its weight is 0)."""

    name = "head"

    def __init__(self, n_labels: int) -> None:
        self.n_labels = n_labels
        self.weight = 0.0
        self.l2 = 1e-3
        self.epochs = 300
        self.head: LinearHead | None = None

    def configure(self, config: GuardConfig) -> None:
        """The weight and fitting knobs; a head already fitted is kept (refit with `fit`)."""
        self.weight, self.l2, self.epochs = config.weight_head, config.head_l2, config.head_epochs

    def fit(self, vectors: Vectors, columns: NDArray[np.int64], cache: object | None = None) -> None:
        """`cache`: an `index.fits.FitCache` holding heads fitted before (None: always fit)."""
        if not len(columns) or self.weight == 0:
            self.head = None
            return
        self.head = fit_linear_head_cached(vectors, columns, self.n_labels, self.l2, self.epochs, cache)

    def distribution(self, queries: Vectors, neighbours: Neighbours) -> Matrix | None:
        return None if self.head is None else self.head.predict(queries)
