"""FAISS vector store keyed by exemplar ids: exact inner product (cosine on normalised vectors) with stable ids."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.errors import DuplicateExemplarError, IndexArtifactError, InvalidInputError, UnknownExemplarError
from index.types import Ids, Vectors

_INDEX_FILE = "vectors.faiss"
_MANIFEST_FILE = "store.json"


@dataclass(frozen=True, slots=True)
class StoreManifest:
    """What was saved beside the FAISS file, checked at load."""

    model_id: str
    dim: int
    count: int
    checksum: str


class VectorStore:
    """Exact inner-product search over L2-normalised vectors, keyed by int64 ids (IndexIDMap2 over IndexFlatIP).

    Ids are unique: adding an id twice raises (FAISS itself would silently keep both copies).
    """

    def __init__(self, dim: int, model_id: str) -> None:
        self.dim = dim
        self.model_id = model_id
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._ids: set[int] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, exemplar_id: object) -> bool:
        return exemplar_id in self._ids

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self._ids)

    def add(self, ids: Iterable[int], vectors: Vectors) -> None:
        """Add vectors under new ids; raises DuplicateExemplarError before changing anything."""
        id_list = [int(i) for i in ids]
        vectors = self._check_vectors(vectors, len(id_list))
        if len(set(id_list)) != len(id_list):
            raise DuplicateExemplarError("the same exemplar id appears twice in one add call")
        clash = self._ids.intersection(id_list)
        if clash:
            raise DuplicateExemplarError(f"exemplar ids already in the store: {sorted(clash)[:10]}")
        if id_list:
            self._index.add_with_ids(vectors, np.asarray(id_list, dtype=np.int64))
            self._ids.update(id_list)

    def remove(self, ids: Iterable[int], missing_ok: bool = False) -> int:
        """Remove ids; returns how many were removed. Unknown ids raise unless `missing_ok`."""
        id_list = sorted({int(i) for i in ids})
        unknown = [i for i in id_list if i not in self._ids]
        if unknown and not missing_ok:
            raise UnknownExemplarError(f"exemplar ids not in the store: {unknown[:10]}")
        present = [i for i in id_list if i in self._ids]
        if not present:
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(present, dtype=np.int64))))
        self._ids.difference_update(present)
        return removed

    def search(self, queries: Vectors, k: int) -> tuple[np.ndarray[Any, np.dtype[np.float32]], Ids]:
        """Top-k (similarities, ids) per query; missing slots (k > size) have id -1 and similarity -inf."""
        queries = self._check_vectors(queries, None)
        if not self._ids or k <= 0:
            n = queries.shape[0]
            return np.full((n, max(k, 0)), -np.inf, dtype=np.float32), np.full((n, max(k, 0)), -1, dtype=np.int64)
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

    def checksum(self) -> str:
        """SHA-256 of the serialised index: equal stores give equal checksums."""
        return hashlib.sha256(faiss.serialize_index(self._index).tobytes()).hexdigest()

    def save(self, directory: Path) -> StoreManifest:
        """Write the index and its manifest atomically (temp dir, then rename over `directory`)."""
        data = faiss.serialize_index(self._index).tobytes()
        manifest = StoreManifest(self.model_id, self.dim, len(self._ids), hashlib.sha256(data).hexdigest())
        atomic_write_dir(
            directory,
            {_INDEX_FILE: data, _MANIFEST_FILE: json.dumps(asdict(manifest), indent=2).encode()},
        )
        return manifest

    @classmethod
    def load(cls, directory: Path, expected_model_id: str | None = None) -> VectorStore:
        """Load a saved store; raises IndexArtifactError when missing, corrupt or built by another model."""
        try:
            meta = json.loads((directory / _MANIFEST_FILE).read_text())
            manifest = StoreManifest(**meta)
            data = (directory / _INDEX_FILE).read_bytes()
        except FileNotFoundError as exc:
            raise IndexArtifactError(f"index artifact missing in {directory}: {exc.filename}") from exc
        except (ValueError, TypeError) as exc:
            raise IndexArtifactError(f"index manifest in {directory} is unreadable: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != manifest.checksum:
            raise IndexArtifactError(f"index file in {directory} does not match its checksum (truncated or corrupt)")
        if expected_model_id is not None and manifest.model_id != expected_model_id:
            raise IndexArtifactError(
                f"index in {directory} was built with model {manifest.model_id!r}, not {expected_model_id!r}"
            )
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexArtifactError(f"index file in {directory} cannot be read by FAISS: {exc}") from exc
        if not isinstance(index, faiss.IndexIDMap2) or index.d != manifest.dim:
            raise IndexArtifactError(f"index file in {directory} is not an id-mapped index of dimension {manifest.dim}")
        store = cls(manifest.dim, manifest.model_id)
        store._index = index
        store._ids = set(faiss.vector_to_array(store._index.id_map).astype(np.int64).tolist())
        if len(store._ids) != manifest.count:
            raise IndexArtifactError(
                f"index in {directory} holds {len(store._ids)} ids, manifest says {manifest.count}"
            )
        return store

    def _check_vectors(self, vectors: Vectors, rows: int | None) -> Vectors:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise InvalidInputError(f"expected vectors of shape (n, {self.dim}), got {arr.shape}")
        if rows is not None and arr.shape[0] != rows:
            raise InvalidInputError(f"{rows} ids but {arr.shape[0]} vectors")
        if not np.isfinite(arr).all():
            raise InvalidInputError("vectors contain NaN or infinity")
        return arr


def atomic_write_dir(directory: Path, files: dict[str, bytes]) -> None:
    """Write `files` into a fresh temp dir beside `directory`, fsync, then swap it in with renames.

    A crash leaves either the old directory or the new one, never a mix; a stale temp dir is ignored.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
        dir_fd = os.open(directory.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
