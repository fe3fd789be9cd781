"""The vector store contract: every backend (`StoreBackend`) must pass these tests. FAISS runs them as exact (flat)
and as IVF search; a new backend joins BACKENDS."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from index import (
    DuplicateExemplarError,
    FaissBackend,
    IndexArtifactError,
    InvalidInputError,
    StoreBackend,
    UnknownExemplarError,
    VectorStore,
)
from index.store import AnnParams

# "faiss-ivf" uses a threshold of 0 so even a one-vector store is IVF (with nprobe = nlist, i.e. exhaustive, so
# results must equal exact search).
BACKENDS: dict[str, StoreBackend] = {
    "faiss-flat": FaissBackend(),
    "faiss-ivf": FaissBackend(ann_threshold=0, ann=AnnParams(nlist=4, nprobe=4)),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> StoreBackend:
    return BACKENDS[request.param]


@pytest.fixture
def make(backend: StoreBackend) -> Callable[..., VectorStore]:
    return backend.empty


def ids_of(store: VectorStore) -> set[int]:
    return set(store.items()[0].tolist())


def unit(rows: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_search_returns_own_vector_first_with_stable_ids(make: Callable[..., VectorStore]) -> None:
    store = make(16, "m")
    vecs = unit(50)
    ids = list(range(1000, 1050))
    store.add(ids, vecs)
    sims, found = store.search(vecs[:5], k=3)
    assert found[:, 0].tolist() == ids[:5]
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-6).all(), "similarities must be sorted descending"


def test_remove_then_search_never_returns_removed_ids(make: Callable[..., VectorStore]) -> None:
    store = make(16, "m")
    vecs = unit(20)
    store.add(range(20), vecs)
    assert store.remove([3, 7]) == 2
    _, found = store.search(vecs, k=20)
    assert 3 not in found and 7 not in found
    assert len(store) == 18
    np.testing.assert_allclose(store.reconstruct([8]), vecs[8:9])


def test_duplicate_ids_are_refused_and_nothing_changes(make: Callable[..., VectorStore]) -> None:
    store = make(16, "m")
    store.add([1, 2], unit(2))
    with pytest.raises(DuplicateExemplarError):
        store.add([3, 2], unit(2, seed=1))
    with pytest.raises(DuplicateExemplarError):
        store.add([5, 5], unit(2, seed=2))
    assert ids_of(store) == {1, 2}


def test_unknown_ids_raise_unless_missing_ok(make: Callable[..., VectorStore]) -> None:
    store = make(16, "m")
    store.add([1], unit(1))
    with pytest.raises(UnknownExemplarError):
        store.remove([1, 99])
    assert len(store) == 1
    assert store.remove([99], missing_ok=True) == 0


def test_wrong_shapes_and_nan_are_invalid_input(make: Callable[..., VectorStore]) -> None:
    store = make(16, "m")
    with pytest.raises(InvalidInputError):
        store.add([1], unit(1, dim=8))
    with pytest.raises(InvalidInputError):
        store.add([1, 2], unit(1))
    bad = unit(1)
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInputError):
        store.add([1], bad)


def test_search_on_empty_store_and_k_larger_than_size(make: Callable[..., VectorStore]) -> None:
    store = make(16, "m")
    sims, ids = store.search(unit(2), k=4)
    assert (ids == -1).all() and np.isneginf(sims).all()
    store.add([1, 2], unit(2))
    sims, ids = store.search(unit(1), k=4)
    assert ids[0, 2:].tolist() == [-1, -1] and np.isneginf(sims[0, 2:]).all()


def test_bytes_round_trip_keeps_ids_vectors_and_checksum(backend: StoreBackend) -> None:
    store = backend.empty(16, "model-a")
    vecs = unit(30)
    store.add(range(100, 130), vecs)
    store.remove([105])
    loaded = backend.from_bytes(store.to_bytes(), 16, "model-a")
    assert ids_of(loaded) == ids_of(store) and len(loaded) == 29 and 105 not in loaded and 106 in loaded
    assert loaded.checksum() == store.checksum()
    assert loaded.model_id == "model-a" and loaded.dim == 16
    np.testing.assert_array_equal(loaded.search(vecs, 3)[1], store.search(vecs, 3)[1])
    np.testing.assert_array_equal(loaded.reconstruct([110, 101]), vecs[[10, 1]])


def test_a_copy_has_equal_bytes_and_does_not_follow_later_edits(backend: StoreBackend) -> None:
    store = backend.empty(16, "model-a")
    vecs = unit(30)
    store.add(range(100, 130), vecs)
    store.remove([105])
    twin = store.copy()
    assert twin.to_bytes() == store.to_bytes() and len(twin) == 29 and twin.model_id == "model-a"
    np.testing.assert_array_equal(twin.reconstruct([110, 101]), vecs[[10, 1]])
    store.add([200], unit(1, seed=1))
    store.remove([101])
    assert 200 not in twin and 101 in twin and ids_of(twin) == set(range(100, 130)) - {105}
    twin.remove([110])  # and the other way round
    assert 110 in store


def test_equal_contents_give_equal_checksums(backend: StoreBackend) -> None:
    a, b = backend.empty(16, "m"), backend.empty(16, "m")
    a.add([1, 2, 3], unit(3))
    b.add([1, 2, 3], unit(3))
    assert a.checksum() == b.checksum()
    b.remove([2])
    assert a.checksum() != b.checksum()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-dim"])
def test_unreadable_bytes_are_an_artifact_error(backend: StoreBackend, damage: str) -> None:
    store = backend.empty(16, "m")
    store.add(range(10), unit(10))
    data = store.to_bytes()
    dim = 16
    if damage == "truncate":
        data = data[:100]
    elif damage == "garbage":
        data = b"not a vector store" * 10
    else:
        dim = 32
    with pytest.raises(IndexArtifactError):
        backend.from_bytes(data, dim, "m")
