"""What every built-in scorer is and returns: the `Scorer` protocol, the neighbours it may read, the `Scores` of a
batch of query vectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from index.scoring.functions import LabelIdx, Matrix
from index.types import Ids, Vectors

if TYPE_CHECKING:
    from index.config import GuardConfig


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The nearest exemplars of each query, found once per batch and shared by the scorers and the evidence.

    `label_idx` is each neighbour's built-in column, -1 where it does not vote (a custom topic's exemplar, an empty
    slot, or a built-in neighbour beyond the first k).
    """

    sims: Matrix  # (n, m) similarities, best first; -inf marks an empty slot
    ids: Ids  # (n, m) exemplar ids; -1 marks an empty slot
    label_idx: LabelIdx  # (n, m)


class Scorer(Protocol):
    """One view of the built-in categories: a distribution over the built-in labels (safe included) per query.

    The guard fuses its scorers' distributions with their weights (`index.scoring.fusion`); a new scorer is a class
    with these members, listed in `index.scoring.builtin_scorers`, reading its weight and knobs from `GuardConfig`.
    """

    def configure(self, config: GuardConfig) -> None:
        """Read its weight and knobs (at construction, and whenever the guard's configuration changes)."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float:
        """Its weight in the fusion (>= 0; the weights are normalised to sum 1)."""
        ...

    def distribution(self, queries: Vectors, neighbours: Neighbours) -> Matrix | None:
        """(n, n_builtin) rows summing to 1, or None when it has nothing to say (e.g. a head not fitted)."""
        ...


@dataclass(frozen=True, slots=True)
class Scores:
    """What the guard's scorers make of query vectors, row by row (`Guard.score`)."""

    unsafe: NDArray[np.float64]  # (n,) calibrated unsafe score
    builtin: Matrix  # (n, n_builtin) fused distribution
    topics: dict[str, NDArray[np.float32]]
    neighbour_sims: Matrix
    neighbour_ids: Ids

    @classmethod
    def concat(cls, parts: Sequence[Scores]) -> Scores:
        """The rows of `parts` in order, as if scored at once (parts must come from one state of one guard)."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.unsafe for p in parts]),
            np.concatenate([p.builtin for p in parts]),
            {name: np.concatenate([p.topics[name] for p in parts]) for name in parts[0].topics},
            np.concatenate([p.neighbour_sims for p in parts]),
            np.concatenate([p.neighbour_ids for p in parts]),
        )
