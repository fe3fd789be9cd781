"""A stand-in for the few FAISS calls an exact (flat) `index.store.FaissStore` makes, for the GPU device run only.

The lent GPU machine has no faiss, and its wheel (18.8 MB) does not fit beside the base weights in the 64 MiB that
travel to it (benchmarks/training/gpu_run.py). The evaluation's stores are exact (`GuardConfig().ann_threshold` is
None), so a brute-force inner product gives the same neighbours (up to ties); on CUDA it runs on the GPU.
`install()` puts this module in `sys.modules["faiss"]` only when the real faiss cannot be imported. IVF, saving and
loading raise: the evaluation does not use them. tests/benchmarks/test_gpu_run.py checks it against the real faiss.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np

__version__ = "flat-standin"
cvar = SimpleNamespace(distance_compute_blas_threshold=20)
METRIC_INNER_PRODUCT = 0
_ROWS_PER_SEARCH = 4096  # query rows per matrix product (bounds the similarity block's memory)


FORCE_ENV = "LIGHTGUARD_FLAT_FAISS"  # "1": use the stand-in even where faiss exists (`make gpu-smoke`)


def install() -> bool:
    """Make `import faiss` return this module if the real one is missing (or FORCE_ENV is "1"); True when the
    stand-in is now in use. Call it before anything imports index."""
    if os.environ.get(FORCE_ENV) == "1":
        if "faiss" in sys.modules and sys.modules["faiss"] is not sys.modules[__name__]:
            raise RuntimeError(f"{FORCE_ENV}=1 but the real faiss was imported first")
        sys.modules["faiss"] = sys.modules[__name__]
        return True
    try:
        import faiss  # noqa: F401
    except ImportError:
        sys.modules["faiss"] = sys.modules[__name__]
        return True
    return sys.modules["faiss"] is sys.modules[__name__]


def omp_set_num_threads(threads: int) -> None:
    """Searches are matrix products: their thread count is numpy's or torch's."""


class IndexIVF:
    """Never instantiated: `FaissStore.backend` checks isinstance against it."""


class IndexIVFFlat(IndexIVF):
    def __init__(self, *args: Any) -> None:
        raise NotImplementedError("the flat FAISS stand-in has no IVF: use GuardConfig(ann_threshold=None)")


class IndexFlatIP:
    def __init__(self, d: int) -> None:
        self.d = d


class IndexIDMap2:
    """Exact inner-product search over vectors keyed by int64 ids."""

    def __init__(self, flat: IndexFlatIP) -> None:
        self.d = flat.d
        self._vectors = np.zeros((0, self.d), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._device: Any = None

    @property
    def ntotal(self) -> int:
        return len(self._ids)

    def add_with_ids(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, np.asarray(vectors, dtype=np.float32)])
        self._ids = np.concatenate([self._ids, np.asarray(ids, dtype=np.int64)])
        self._device = None

    def reconstruct(self, exemplar_id: int) -> np.ndarray:
        rows = np.flatnonzero(self._ids == exemplar_id)
        if not len(rows):
            raise RuntimeError(f"id {exemplar_id} not in the index")
        vector: np.ndarray = self._vectors[rows[0]].copy()
        return vector

    def remove_ids(self, selector: IDSelectorBatch) -> int:
        keep = ~np.isin(self._ids, selector.ids)
        removed = int((~keep).sum())
        self._vectors, self._ids, self._device = self._vectors[keep], self._ids[keep], None
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = queries.shape[0]
        sims = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        take = min(k, self.ntotal)
        if take == 0:
            return sims, ids
        for start in range(0, n, _ROWS_PER_SEARCH):
            block = np.asarray(queries[start : start + _ROWS_PER_SEARCH], dtype=np.float32)
            top_sims, top_rows = self._top(block, take)
            sims[start : start + len(block), :take] = top_sims
            ids[start : start + len(block), :take] = self._ids[top_rows]
        return sims, ids

    def _top(self, block: np.ndarray, take: int) -> tuple[np.ndarray, np.ndarray]:
        torch = _cuda_torch()
        if torch is not None:
            if self._device is None:
                self._device = torch.from_numpy(self._vectors).cuda()
            got = torch.topk(torch.from_numpy(block).cuda() @ self._device.T, take, dim=1)
            return got.values.cpu().numpy(), got.indices.cpu().numpy()
        scores = block @ self._vectors.T
        rows = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        part = np.take_along_axis(scores, rows, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(rows, order, axis=1)


class IDSelectorBatch:
    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)


def _cuda_torch() -> Any:
    """torch when it is already imported and sees a GPU (the device run), else None: numpy does the search."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch


def _unsupported(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"faiss.{name} is not in the flat FAISS stand-in (benchmarks/training/flat_faiss.py)")

    return call


clone_index = _unsupported("clone_index")
serialize_index = _unsupported("serialize_index")
deserialize_index = _unsupported("deserialize_index")
