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
from index.store.files import atomic_write_dir, atomic_write_file

__all__ = [
    "DEFAULT_ANN_THRESHOLD",
    "AnnParams",
    "FaissBackend",
    "FaissStore",
    "StoreBackend",
    "VectorStore",
    "atomic_write_dir",
    "atomic_write_file",
    "set_flat_search_blas_from",
    "set_search_threads",
]
