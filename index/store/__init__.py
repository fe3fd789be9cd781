"""Vector stores: the contract (`VectorStore`, `StoreBackend`) and the FAISS implementation."""

from __future__ import annotations

from index.store.base import StoreBackend, VectorStore
from index.store.faiss_store import (
    DEFAULT_ANN_THRESHOLD,
    AnnParams,
    FaissBackend,
    FaissStore,
    set_flat_search_blas_from,
    set_search_threads,
)

__all__ = [
    "DEFAULT_ANN_THRESHOLD",
    "AnnParams",
    "FaissBackend",
    "FaissStore",
    "StoreBackend",
    "VectorStore",
    "set_flat_search_blas_from",
    "set_search_threads",
]
