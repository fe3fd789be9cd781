"""The vector store contract: what the guard needs from any backend (FAISS today), and how backends are made.

A store keeps L2-normalised float32 vectors under unique int64 ids (exemplar ids) and answers top-k inner-product
(cosine) searches. Every backend passes the one contract test, tests/index/test_store.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from index.types import Ids, Vectors


class VectorStore(Protocol):
    """Vectors keyed by exemplar id, searched by inner product."""

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str:
        """Identity of the encoder that produced the vectors (checked when a saved store is loaded)."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, exemplar_id: object) -> bool: ...

    def add(self, ids: Iterable[int], vectors: Vectors) -> None:
        """Add vectors under new ids; DuplicateExemplarError (nothing changes) when an id is already stored."""
        ...

    def remove(self, ids: Iterable[int], missing_ok: bool = False) -> int:
        """Remove ids and return how many went; UnknownExemplarError for an unknown id unless `missing_ok`."""
        ...

    def search(self, queries: Vectors, k: int, nprobe: int | None = None) -> tuple[NDArray[np.float32], Ids]:
        """Top-k (similarities, ids) per query, best first; empty slots have id -1 and similarity -inf.
        `nprobe` is a hint for approximate backends (ignored by exact ones)."""
        ...

    def reconstruct(self, ids: Iterable[int]) -> Vectors:
        """The stored vectors of `ids`, in that order (UnknownExemplarError for an unknown id)."""
        ...

    def items(self) -> tuple[Ids, Vectors]:
        """Every (id, vector) stored."""
        ...

    def checksum(self) -> str:
        """A digest of the contents: equal stores give equal checksums."""
        ...

    def to_bytes(self) -> bytes:
        """A serialisation that `StoreBackend.from_bytes` reads back."""
        ...

    def copy(self) -> VectorStore:
        """An independent copy (equal contents, equal bytes) that later edits of this store do not change: taken
        under a lock, it lets the slow serialisation run after the lock is released."""
        ...


class StoreBackend(Protocol):
    """Makes stores of one kind: empty ones for a new guard, and stores read back from `VectorStore.to_bytes`."""

    def empty(self, dim: int, model_id: str) -> VectorStore: ...

    def from_bytes(self, data: bytes, dim: int, model_id: str) -> VectorStore:
        """IndexArtifactError when the bytes are not a store of this kind and dimension."""
        ...
