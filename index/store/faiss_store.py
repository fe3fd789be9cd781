"""The FAISS backend of the vector store: inner product (cosine on normalised vectors), exact or IVF, stable ids."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import faiss
import numpy as np

from index.errors import DuplicateExemplarError, IndexArtifactError, InvalidInputError, UnknownExemplarError
from index.fits import cached_fit, fit_key
from index.types import Ids, Vectors

FaissKind = Literal["flat", "ivf"]

IVF_FIT_FORMAT = 1
"""Part of cached IVF centroids' key (`index.fits`): bump it when the training below changes."""

DEFAULT_ANN_THRESHOLD = 50_000
"""Suggested size above which an approximate (IVF) index pays off: exact search over 50k vectors costs ~4 ms a query."""


@dataclass(frozen=True, slots=True)
class AnnParams:
    """IVF knobs. `nlist` None means ~2·sqrt(n) lists (clamped to [16, 4096]); recall@10 vs nprobe: docs/performance.md.

    Training runs k-means on at most `train_points_per_list` vectors per list, `niter` iterations (a 1M-vector IVF
    then trains in seconds instead of minutes, at no measurable recall cost on sentence embeddings).
    """

    nlist: int | None = None
    nprobe: int = 32
    niter: int = 10
    train_points_per_list: int = 64
    seed: int = 1234


class FaissStore:
    """Inner-product search over L2-normalised vectors keyed by int64 ids; exact (flat) or IVF above a threshold.

    Backends behind one contract (add / remove / search / reconstruct / save / load):
    - "flat": IndexIDMap2 over IndexFlatIP, exact. Removal rewrites the array (O(n)).
    - "ivf": IndexIVFFlat storing the ids itself, with a hash-table direct map so `reconstruct` and `remove_ids`
      work by id. Used once the store holds more than `ann_threshold` vectors; it is re-trained when it has doubled
      since the last training (or on `rebuild()`), and turns back into "flat" below half the threshold.
    Ids are unique: adding an id twice raises (FAISS itself would silently keep both copies).
    """

    def __init__(
        self,
        dim: int,
        model_id: str,
        ann_threshold: int | None = None,
        ann: AnnParams | None = None,
        fits: object | None = None,
    ) -> None:
        """Args:
        dim: vector dimension.
        model_id: identity of the encoder that produced the vectors (checked at load).
        ann_threshold: switch to the IVF backend above this many vectors; None keeps exact search at any size.
        ann: IVF parameters.
        fits: an `index.fits.FitCache` keeping IVF centroids by their training input (None: always train).
        """
        self.fits = fits
        self.dim = dim
        self.model_id = model_id
        self.ann_threshold = ann_threshold
        self.ann = ann or AnnParams()
        self._index: Any = _new_flat(dim)
        self._ids: set[int] = set()
        self._trained_for = 0

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, exemplar_id: object) -> bool:
        return exemplar_id in self._ids

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self._ids)

    @property
    def backend(self) -> FaissKind:
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "flat"

    def add(self, ids: Iterable[int], vectors: Vectors) -> None:
        """Add vectors under new ids; raises DuplicateExemplarError before changing anything."""
        id_list = [int(i) for i in ids]
        vectors = self._check_vectors(vectors, len(id_list))
        if len(set(id_list)) != len(id_list):
            raise DuplicateExemplarError("the same exemplar id appears twice in one add call")
        clash = self._ids.intersection(id_list)
        if clash:
            raise DuplicateExemplarError(f"exemplar ids already in the store: {sorted(clash)[:10]}")
        if not id_list:
            return
        id_arr = np.asarray(id_list, dtype=np.int64)
        total = len(self._ids) + len(id_list)
        wants_ivf = self.ann_threshold is not None and total > self.ann_threshold
        if wants_ivf and (self.backend == "flat" or total > 2 * self._trained_for):
            old_ids, old_vectors = self._all()
            self._rebuild(np.concatenate([old_ids, id_arr]), np.concatenate([old_vectors, vectors]), "ivf")
        else:
            self._index.add_with_ids(vectors, id_arr)
        self._ids.update(id_list)

    def remove(self, ids: Iterable[int], missing_ok: bool = False) -> int:
        """Remove ids; returns how many were removed. Unknown ids raise unless `missing_ok`."""
        id_list = sorted({int(i) for i in ids})
        unknown = [i for i in id_list if i not in self._ids]
        if unknown and not missing_ok:
            raise UnknownExemplarError(f"exemplar ids not in the store: {unknown[:10]}")
        present = np.asarray([i for i in id_list if i in self._ids], dtype=np.int64)
        if not len(present):
            return 0
        if self.backend == "ivf":
            # The hash-table direct map only accepts an explicit id array (IDSelectorBatch would raise).
            removed = int(self._index.remove_ids(faiss.IDSelectorArray(len(present), faiss.swig_ptr(present))))
        else:
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(present)))
        self._ids.difference_update(present.tolist())
        if self.backend == "ivf" and self.ann_threshold is not None and len(self._ids) < self.ann_threshold // 2:
            self.rebuild()
        return removed

    def rebuild(self) -> None:
        """Re-create the index for its current contents: re-trains IVF lists, or returns to flat when small."""
        ids, vectors = self._all()
        large = self.ann_threshold is not None and len(ids) > self.ann_threshold
        self._rebuild(ids, vectors, "ivf" if large else "flat")

    def search(
        self, queries: Vectors, k: int, nprobe: int | None = None
    ) -> tuple[np.ndarray[Any, np.dtype[np.float32]], Ids]:
        """Top-k (similarities, ids) per query; missing slots (k > size) have id -1 and similarity -inf.

        `nprobe`: IVF lists to search (default `ann.nprobe`); ignored by exact search.
        """
        queries = self._check_vectors(queries, None)
        if not self._ids or k <= 0:
            n = queries.shape[0]
            return np.full((n, max(k, 0)), -np.inf, dtype=np.float32), np.full((n, max(k, 0)), -1, dtype=np.int64)
        if self.backend == "ivf":
            probe = max(1, min(self.ann.nprobe if nprobe is None else nprobe, self._index.nlist))
            params = faiss.SearchParametersIVF(nprobe=probe)  # type: ignore[call-arg]
            sims, ids = self._index.search(queries, k, params=params)
        else:
            sims, ids = self._index.search(queries, k)
        sims = np.where(ids < 0, -np.inf, sims).astype(np.float32)
        return sims, ids.astype(np.int64)

    def reconstruct(self, ids: Iterable[int]) -> Vectors:
        """Stored vectors for ids (in the given order)."""
        id_list = [int(i) for i in ids]
        unknown = [i for i in id_list if i not in self._ids]
        if unknown:
            raise UnknownExemplarError(f"exemplar ids not in the store: {unknown[:10]}")
        out = np.empty((len(id_list), self.dim), dtype=np.float32)
        for row, i in enumerate(id_list):
            out[row] = self._index.reconstruct(i)
        return out

    def memory_bytes(self) -> int:
        """Bytes the index occupies when serialised (a close proxy for its resident size)."""
        return int(self._serialize().size)

    def checksum(self) -> str:
        """SHA-256 of the serialised index: equal stores give equal checksums."""
        return hashlib.sha256(self._serialize().tobytes()).hexdigest()

    def copy(self) -> FaissStore:
        """An independent copy (a memory copy of the index: ~15 ms for the 30k seed vectors, where `to_bytes` takes
        ~10x that)."""
        twin = FaissStore(self.dim, self.model_id, self.ann_threshold, self.ann)
        twin._index = faiss.clone_index(self._index)
        if twin.backend == "ivf":
            twin._index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        twin._ids = set(self._ids)
        twin._trained_for = self._trained_for
        return twin

    def to_bytes(self) -> bytes:
        """The FAISS serialisation of the index (equal contents give equal bytes)."""
        return bytes(self._serialize().tobytes())

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        dim: int,
        model_id: str,
        ann_threshold: int | None = None,
        ann: AnnParams | None = None,
        fits: object | None = None,
    ) -> FaissStore:
        """Rebuild a store from `to_bytes()` output; IndexArtifactError when FAISS cannot read it or it is foreign."""
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexArtifactError(f"the index bytes cannot be read by FAISS: {exc}") from exc
        store = cls(dim, model_id, ann_threshold, ann, fits)
        if isinstance(index, faiss.IndexIDMap2) and index.d == dim:
            store._index = index
            ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        elif isinstance(index, faiss.IndexIVFFlat) and index.d == dim:
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
            store._index = index
            ids = _ivf_ids(index)
            store._trained_for = len(ids)
        else:
            raise IndexArtifactError(f"the index bytes are not an id-mapped flat or IVF index of dimension {dim}")
        store._ids = set(ids.tolist())
        return store

    def items(self) -> tuple[Ids, Vectors]:
        """Every (id, vector) currently stored, copied out of FAISS in one pass."""
        return self._all()

    # ----------------------------------------------------------------- internals
    def _serialize(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        if self.backend == "flat":
            return faiss.serialize_index(self._index)
        # The hash-table direct map serialises in hash order, which differs between equal stores: drop it while
        # writing (it is rebuilt from the lists in O(n)) so equal contents give equal bytes and checksums.
        self._index.set_direct_map_type(faiss.DirectMap.NoMap)  # type: ignore[attr-defined]
        try:
            return faiss.serialize_index(self._index)
        finally:
            self._index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]

    def _all(self) -> tuple[Ids, Vectors]:
        """Every (id, vector) currently stored, copied out of FAISS."""
        n = int(self._index.ntotal)
        if self.backend == "flat":
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            flat: Any = faiss.downcast_index(self._index.index)
            vectors = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim).copy()
            return ids, vectors
        ivf = self._index
        id_parts: list[Ids] = []
        vec_parts: list[Vectors] = []
        for lst in range(ivf.nlist):
            size = ivf.invlists.list_size(lst)
            if not size:
                continue
            id_parts.append(faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), size).astype(np.int64))
            codes = faiss.rev_swig_ptr(ivf.invlists.get_codes(lst), size * ivf.code_size)
            vec_parts.append(np.frombuffer(codes.tobytes(), dtype=np.float32).reshape(size, self.dim))
        if not id_parts:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return np.concatenate(id_parts), np.concatenate(vec_parts)

    def _rebuild(self, ids: Ids, vectors: Vectors, backend: FaissKind) -> None:
        if backend == "flat":
            index: Any = _new_flat(self.dim)
        else:
            n = len(ids)
            nlist = self.ann.nlist or int(np.clip(round(2 * np.sqrt(n)), 16, 4096))
            nlist = max(1, min(nlist, n))  # k-means needs at least one training point per list
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = self.ann.niter
            index.cp.seed = self.ann.seed
            index.cp.max_points_per_centroid = self.ann.train_points_per_list
            self._train(index, vectors)
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
            self._trained_for = n
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors), np.ascontiguousarray(ids))
        self._index = index

    def _train(self, index: Any, vectors: Vectors) -> None:
        """Train the IVF lists (k-means), or take the centroids of an earlier training on the same vectors from
        `fits`: a new home or a rebuild of unchanged exemplars skips the k-means (seconds on a loaded machine)."""
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        cp = index.cp
        key = fit_key(
            f"ivf-centroids/{IVF_FIT_FORMAT}",
            faiss.__version__,
            index.nlist,
            cp.niter,
            cp.seed,
            cp.max_points_per_centroid,
            data,
        )

        def train() -> dict[str, np.ndarray[Any, Any]]:
            index.train(data)
            return {"centroids": index.quantizer.reconstruct_n(0, index.nlist)}

        fitted = cached_fit(self.fits, key, train)
        if not index.is_trained:  # taken from the cache: the quantizer holds exactly what training put there
            index.quantizer.add(np.ascontiguousarray(fitted["centroids"], dtype=np.float32))
            index.is_trained = True

    def _check_vectors(self, vectors: Vectors, rows: int | None) -> Vectors:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise InvalidInputError(f"expected vectors of shape (n, {self.dim}), got {arr.shape}")
        if rows is not None and arr.shape[0] != rows:
            raise InvalidInputError(f"{rows} ids but {arr.shape[0]} vectors")
        if not np.isfinite(arr).all():
            raise InvalidInputError("vectors contain NaN or infinity")
        return arr


def _new_flat(dim: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _ivf_ids(index: Any) -> Ids:
    parts = [
        faiss.rev_swig_ptr(index.invlists.get_ids(lst), index.invlists.list_size(lst)).astype(np.int64)
        for lst in range(index.nlist)
        if index.invlists.list_size(lst)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class FaissBackend:
    """Makes FaissStores: exact search, switching to IVF above `ann_threshold` vectors (None: always exact)."""

    ann_threshold: int | None = None
    ann: AnnParams = AnnParams()
    fits: object | None = field(default=None, compare=False)
    """An `index.fits.FitCache` for the stores' IVF centroids (see `FaissStore`)."""

    def empty(self, dim: int, model_id: str) -> FaissStore:
        return FaissStore(dim, model_id, self.ann_threshold, self.ann, self.fits)

    def from_bytes(self, data: bytes, dim: int, model_id: str) -> FaissStore:
        return FaissStore.from_bytes(data, dim, model_id, self.ann_threshold, self.ann, self.fits)


def set_search_threads(threads: int) -> None:
    """FAISS's OpenMP thread count for searches from the calling thread (OpenMP keeps it per thread: every thread
    that searches sets it; a thread started later begins with one thread per core)."""
    faiss.omp_set_num_threads(max(1, threads))


def set_flat_search_blas_from(queries: int) -> None:
    """Process-wide: from this many queries on, a flat search is one BLAS matrix product (reading the vectors once)
    instead of one pass over the vectors per query (FAISS's default threshold is 128000, i.e. never)."""
    faiss.cvar.distance_compute_blas_threshold = queries
