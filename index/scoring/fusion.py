"""Built-in scoring end to end: the nearest exemplars of a batch, every scorer's distribution, their fusion, the
calibrated unsafe score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from index.calibration import Platt
from index.scoring.base import Neighbours, Scorer
from index.scoring.functions import Matrix, fuse
from index.store import VectorStore
from index.types import Vectors


def find_neighbours(
    store: VectorStore, queries: Vectors, k: int, extra: int, builtin_of: Mapping[int, int], nprobe: int | None
) -> Neighbours:
    """The top `k + min(extra, 4k)` exemplars of each query, where `extra` counts the custom topics' exemplars that
    share the store: searching that much deeper leaves k built-in neighbours to vote in most rows. Only the first k
    built-in neighbours of a row vote (`label_idx` -1 for the rest)."""
    sims, ids = store.search(queries, k + min(extra, 4 * k), nprobe=nprobe)
    lookup = builtin_of.get
    label_idx = np.fromiter((lookup(i, -1) for i in ids.ravel().tolist()), np.int64, ids.size).reshape(ids.shape)
    keep = np.cumsum(label_idx >= 0, axis=1) <= k
    return Neighbours(sims, ids, np.where(keep, label_idx, -1))


def distributions(scorers: Sequence[Scorer], queries: Vectors, neighbours: Neighbours) -> dict[str, Matrix]:
    """Each scorer's distribution by name (scorers with nothing to say are left out)."""
    out: dict[str, Matrix] = {}
    for scorer in scorers:
        dist = scorer.distribution(queries, neighbours)
        if dist is not None:
            out[scorer.name] = dist
    return out


def fused_scores(
    scorers: Sequence[Scorer],
    queries: Vectors,
    neighbours: Neighbours,
    unsafe_columns: NDArray[np.bool_],
    platt: Platt,
) -> tuple[NDArray[np.float64], Matrix]:
    """(calibrated unsafe score, fused distribution) per query: the unsafe score is the fused mass of the enabled
    unsafe categories (`unsafe_columns`), Platt-calibrated."""
    dists = distributions(scorers, queries, neighbours)
    fused = fuse([(s.weight, dists[s.name]) for s in scorers if s.name in dists])
    raw = fused[:, unsafe_columns].sum(axis=1) if unsafe_columns.any() else np.zeros(len(queries))
    return platt.apply(raw), fused
