"""The IVF backend of VectorStore: switching at the size threshold, recall against exact search, removal, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from index import FaissStore
from index.store import AnnParams


def clustered(rows: int, dim: int = 32, centres: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few centres: like sentence embeddings, unlike isotropic noise (where no ANN works)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim))
    v = c[rng.integers(0, centres, rows)] + 0.6 * rng.normal(size=(rows, dim))
    v = v.astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def recall_at(k: int, approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact, strict=True)]))


def test_switches_to_ivf_above_threshold_and_back_below_half() -> None:
    store = FaissStore(32, "m", ann_threshold=1000)
    vecs = clustered(3000)
    store.add(range(900), vecs[:900])
    assert store.backend == "flat"
    store.add(range(900, 3000), vecs[900:])
    assert store.backend == "ivf" and len(store) == 3000
    np.testing.assert_allclose(store.reconstruct([5, 2999]), vecs[[5, 2999]])
    store.remove(range(2600))
    assert store.backend == "flat" and len(store) == 400
    assert store.search(vecs[2999:], 1)[1][0, 0] == 2999


def test_ivf_recall_at_10_against_exact_search() -> None:
    vecs = clustered(20_000, seed=1)
    queries = clustered(200, seed=2)
    exact = FaissStore(32, "m")
    exact.add(range(20_000), vecs)
    ivf = FaissStore(32, "m", ann_threshold=10_000)
    ivf.add(range(20_000), vecs)
    assert ivf.backend == "ivf"
    assert recall_at(10, ivf.search(queries, 10)[1], exact.search(queries, 10)[1]) >= 0.95


def test_removed_ids_never_come_back_and_survive_a_bytes_round_trip() -> None:
    vecs = clustered(4000, seed=3)
    store = FaissStore(32, "m", ann_threshold=1000)
    store.add(range(4000), vecs)
    gone = list(range(0, 4000, 3))
    assert store.remove(gone) == len(gone)
    _, found = store.search(vecs[gone[:50]], 10)
    assert not set(found.ravel().tolist()) & set(gone)
    loaded = FaissStore.from_bytes(store.to_bytes(), 32, "m", ann_threshold=1000)
    assert loaded.backend == "ivf" and loaded.ids == store.ids
    assert loaded.checksum() == store.checksum()
    np.testing.assert_array_equal(loaded.search(vecs[:20], 5)[1], store.search(vecs[:20], 5)[1])
    loaded.add([10_000], vecs[:1])  # the loaded IVF index accepts new ids and finds them
    assert 10_000 in loaded.search(vecs[:1], 2)[1][0]


def test_ivf_is_retrained_when_it_has_doubled() -> None:
    store = FaissStore(32, "m", ann_threshold=500)
    vecs = clustered(3000, seed=4)
    store.add(range(600), vecs[:600])
    first = store._index
    store.add(range(600, 1000), vecs[600:1000])
    assert store._index is first, "adding less than the trained size again keeps the trained lists"
    store.add(range(1000, 1300), vecs[1000:1300])
    assert store._index is not first and store.backend == "ivf"
    assert len(store) == 1300


@pytest.mark.parametrize("threshold", [None, 10])
def test_rebuild_keeps_contents(threshold: int | None) -> None:
    vecs = clustered(200, seed=5)
    store = FaissStore(32, "m", ann_threshold=threshold, ann=AnnParams(nlist=4, nprobe=4))
    store.add(range(200), vecs)
    before = store.search(vecs[:10], 3)
    store.rebuild()
    np.testing.assert_array_equal(store.search(vecs[:10], 3)[1], before[1])
    assert store.backend == ("flat" if threshold is None else "ivf")


def test_nprobe_per_search_trades_recall_and_all_lists_is_exact() -> None:
    vecs = clustered(4000)
    store = FaissStore(32, "m", ann_threshold=0, ann=AnnParams(nlist=64, nprobe=1))
    store.add(range(len(vecs)), vecs)
    queries = clustered(100, seed=1)
    exact = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    low = recall_at(10, store.search(queries, 10)[1], exact)
    assert recall_at(10, store.search(queries, 10, nprobe=64)[1], exact) == 1.0
    assert recall_at(10, store.search(queries, 10, nprobe=1000)[1], exact) == 1.0  # clamped to nlist
    assert low < recall_at(10, store.search(queries, 10, nprobe=8)[1], exact) <= 1.0
