"""The exemplars a guard holds: their vectors in the store and their bookkeeping (labels, built-in columns), with
each edit reported as a `Change` for the parts that derive state from exemplars (centroids, topics)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from index.errors import InvalidInputError
from index.labels import LabelSet
from index.store import VectorStore
from index.types import SAFE, Exemplar, Ids, Vectors


@dataclass(frozen=True, slots=True)
class Change:
    """What an edit did: the built-in exemplars' columns and vectors (added or removed), the topics it touched."""

    columns: list[int]
    vectors: Vectors
    topics: set[str]


class ExemplarSet:
    """Exemplars by id, their vectors in a `VectorStore`, and the built-in column each built-in one votes for.
    Not thread-safe: the guard's lock covers it."""

    def __init__(self, store: VectorStore, labels: LabelSet) -> None:
        self.store = store
        self.labels = labels
        self.by_id: dict[int, Exemplar] = {}
        self.builtin_of: dict[int, int] = {}  # exemplar id -> built-in label column (kNN votes)
        # label -> its exemplars by id, in the order of `by_id`: an edit of a topic reads its own exemplars, not
        # a scan of the ~30k of the whole index
        self._by_label: dict[str, dict[int, Exemplar]] = {}

    def add(self, exemplars: Sequence[Exemplar], vectors: Vectors) -> Change:
        """Index exemplars; their labels must exist. All or nothing."""
        for e in exemplars:
            self.labels.require(e.label)
        self.store.add([e.id for e in exemplars], vectors)
        return self._track(exemplars, vectors)

    def adopt(self, store: VectorStore, exemplars: Sequence[Exemplar]) -> Change:
        """Take a loaded store holding exactly `exemplars`' ids as this empty set's store, without re-adding."""
        if len(self.store) or self.by_id:
            raise InvalidInputError("adopt_store needs an empty guard")
        if store.model_id != self.store.model_id or store.dim != self.store.dim:
            raise InvalidInputError(f"the store was built with {store.model_id!r}, not {self.store.model_id!r}")
        ids, vectors = store.items()
        by_id = {e.id: e for e in exemplars}
        if len(by_id) != len(exemplars) or set(by_id) != set(ids.tolist()):
            raise InvalidInputError("the store's ids and the exemplars differ")
        for e in exemplars:
            self.labels.require(e.label)
        self.store = store
        return self._track([by_id[int(i)] for i in ids], vectors)

    def remove(self, ids: Iterable[int]) -> Change:
        """Remove exemplars by id (unknown ids raise UnknownExemplarError, nothing changes)."""
        id_list = sorted(set(ids))
        vectors = self.store.reconstruct(id_list)
        self.store.remove(id_list)
        topics: set[str] = set()
        columns: list[int] = []
        rows: list[int] = []
        for row, i in enumerate(id_list):
            e = self.by_id.pop(i)
            members = self._by_label[e.label]
            del members[i]
            if not members:
                del self._by_label[e.label]
            if e.label in self.labels.column:
                columns.append(self.builtin_of.pop(i))
                rows.append(row)
            else:
                topics.add(e.label)
        return Change(columns, vectors[rows], topics)

    def of_label(self, name: str) -> list[Exemplar]:
        """The exemplars of label `name`, in the order they were added."""
        return list(self._by_label.get(name, {}).values())

    def builtin(self) -> tuple[Ids, Vectors]:
        """(built-in column, vector) of every built-in exemplar, in the order they were added."""
        ids = list(self.builtin_of)
        columns = np.asarray([self.builtin_of[i] for i in ids], dtype=np.int64)
        return columns, self.store.reconstruct(ids)

    def safe_vectors(self, limit: int) -> Vectors:
        """The vectors of the first `limit` exemplars of `safe`."""
        return self.store.reconstruct(list(itertools.islice(self._by_label.get(SAFE, {}), limit)))

    def _track(self, exemplars: Sequence[Exemplar], vectors: Vectors) -> Change:
        topics: set[str] = set()
        rows: list[int] = []
        for row, e in enumerate(exemplars):
            self.by_id[e.id] = e
            self._by_label.setdefault(e.label, {})[e.id] = e
            if e.label in self.labels.column:
                self.builtin_of[e.id] = self.labels.column_of(e)
                rows.append(row)
            else:
                topics.add(e.label)
        return Change([self.builtin_of[exemplars[r].id] for r in rows], vectors[rows], topics)
