"""VectorStore contract on both backends (flat, IVF): round trip, stable ids, removal, duplicates, corrupt files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from index import DuplicateExemplarError, IndexArtifactError, InvalidInputError, UnknownExemplarError, VectorStore
from index.store import AnnParams

# Every contract test runs on both backends: "ivf" uses a threshold of 0 so even a one-vector store is IVF (with
# nprobe = nlist, i.e. exhaustive, so results must equal exact search).
BACKENDS = {"flat": {}, "ivf": {"ann_threshold": 0, "ann": AnnParams(nlist=4, nprobe=4)}}


@pytest.fixture(params=sorted(BACKENDS))
def make(request: pytest.FixtureRequest) -> Callable[..., VectorStore]:
    def factory(dim: int, model_id: str) -> VectorStore:
        return VectorStore(dim, model_id, **BACKENDS[request.param])

    return factory


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
    assert store.ids == frozenset({1, 2})


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


def test_save_load_round_trip_keeps_ids_and_checksum(make: Callable[..., VectorStore], tmp_path: Path) -> None:
    store = make(16, "model-a")
    vecs = unit(30)
    store.add(range(100, 130), vecs)
    store.remove([105])
    manifest = store.save(tmp_path / "idx")
    loaded = VectorStore.load(tmp_path / "idx", expected_model_id="model-a")
    assert loaded.ids == store.ids
    assert loaded.checksum() == store.checksum() == manifest.checksum
    assert manifest.count == 29
    np.testing.assert_array_equal(loaded.search(vecs, 3)[1], store.search(vecs, 3)[1])


def test_save_replaces_previous_artifact_atomically(make: Callable[..., VectorStore], tmp_path: Path) -> None:
    store = make(16, "m")
    store.add([1], unit(1))
    store.save(tmp_path / "idx")
    store.add([2], unit(1, seed=5))
    store.save(tmp_path / "idx")
    assert VectorStore.load(tmp_path / "idx").ids == frozenset({1, 2})
    assert [p.name for p in tmp_path.iterdir()] == ["idx"], "no temp or old directories are left behind"


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_corrupt_artifacts_are_detected(make: Callable[..., VectorStore], tmp_path: Path, damage: str) -> None:
    store = make(16, "m")
    store.add(range(10), unit(10))
    store.save(tmp_path / "idx")
    data_file = tmp_path / "idx" / "vectors.faiss"
    if damage == "truncate":
        data_file.write_bytes(data_file.read_bytes()[:100])
    elif damage == "flip":
        raw = bytearray(data_file.read_bytes())
        raw[-5] ^= 0xFF
        data_file.write_bytes(bytes(raw))
    elif damage == "delete":
        data_file.unlink()
    else:
        (tmp_path / "idx" / "store.json").write_text("{not json")
    with pytest.raises(IndexArtifactError):
        VectorStore.load(tmp_path / "idx")


def test_load_refuses_an_index_built_by_another_model(make: Callable[..., VectorStore], tmp_path: Path) -> None:
    store = make(16, "model-a")
    store.add([1], unit(1))
    store.save(tmp_path / "idx")
    with pytest.raises(IndexArtifactError, match="model-a"):
        VectorStore.load(tmp_path / "idx", expected_model_id="model-b")
