"""Built-in category scoring: the `Scorer` protocol, the kNN / centroid / linear-head scorers and their fusion.

Scores are cosines of L2-normalised vectors turned into distributions over the built-in labels; see
`index.scoring.base` for the contract and `index.scoring.fusion` for how they combine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.scoring.base import Neighbours, Scorer, Scores
from index.scoring.functions import Matrix, centroids, fuse, knn_distribution, logit, sigmoid, softmax
from index.scoring.head import LinearHead, fit_linear_head
from index.scoring.scorers import CentroidScorer, HeadScorer, KnnScorer

if TYPE_CHECKING:
    from index.config import GuardConfig


def builtin_scorers(config: GuardConfig, n_labels: int, dim: int) -> tuple[KnnScorer, CentroidScorer, HeadScorer]:
    """The guard's scorers, in fusion order, with their weights and knobs from `config`."""
    scorers = (KnnScorer(n_labels), CentroidScorer(n_labels, dim), HeadScorer(n_labels))
    for scorer in scorers:
        scorer.configure(config)
    return scorers


__all__ = [
    "CentroidScorer",
    "HeadScorer",
    "KnnScorer",
    "LinearHead",
    "Matrix",
    "Neighbours",
    "Scorer",
    "Scores",
    "builtin_scorers",
    "centroids",
    "fit_linear_head",
    "fuse",
    "knn_distribution",
    "logit",
    "sigmoid",
    "softmax",
]
