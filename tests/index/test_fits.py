"""Cached fits (index.fits): the linear head and IVF centroids taken from a cache equal a fresh fit bit for bit,
are keyed by everything the fit reads, and a damaged entry is refitted, never a failed build."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from index import FaissStore, Guard, HashingEncoder, SqliteEmbeddingCache
from index.config import GuardConfig
from index.encoding.cache import MAX_FITS
from index.scoring.head import fit_linear_head, fit_linear_head_cached
from index.store import AnnParams
from tests.conftest import TOY_EXEMPLARS, TOY_LABELS
from tests.index.test_store_ann import clustered


class DictFits:
    """A `FitCache` in a dict, counting reads that hit."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.hits = 0

    def get_fit(self, key: bytes) -> bytes | None:
        found = self.data.get(key)
        self.hits += found is not None
        return found

    def put_fit(self, key: bytes, data: bytes) -> None:
        self.data[key] = data


def head_inputs(rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    vectors = clustered(rows, dim=16, centres=5, seed=3)
    labels = np.random.default_rng(4).integers(0, 4, rows).astype(np.int64)
    return vectors, labels


def test_cached_head_equals_a_fresh_fit_bit_for_bit() -> None:
    vectors, labels = head_inputs()
    fits = DictFits()
    first = fit_linear_head_cached(vectors, labels, 5, 1e-3, 40, fits)
    again = fit_linear_head_cached(vectors, labels, 5, 1e-3, 40, fits)
    plain = fit_linear_head(vectors, labels, 5, l2=1e-3, epochs=40)
    assert (fits.hits, len(fits.data)) == (1, 1)
    for head in (first, again):
        assert head.weights.tobytes() == plain.weights.tobytes()
        assert head.bias.tobytes() == plain.bias.tobytes()


def test_any_changed_input_misses() -> None:
    vectors, labels = head_inputs()
    fits = DictFits()
    fit_linear_head_cached(vectors, labels, 5, 1e-3, 40, fits)
    moved = labels.copy()
    moved[0] = (moved[0] + 1) % 4
    nudged = vectors.copy()
    nudged[7, 0] = np.nextafter(nudged[7, 0], np.float32(2))
    fit_linear_head_cached(vectors, moved, 5, 1e-3, 40, fits)
    fit_linear_head_cached(nudged, labels, 5, 1e-3, 40, fits)
    fit_linear_head_cached(vectors, labels, 5, 1e-2, 40, fits)
    fit_linear_head_cached(vectors, labels, 5, 1e-3, 41, fits)
    fit_linear_head_cached(vectors, labels, 6, 1e-3, 40, fits)
    assert (fits.hits, len(fits.data)) == (0, 6)


def test_a_damaged_entry_is_refitted_and_replaced() -> None:
    vectors, labels = head_inputs()
    fits = DictFits()
    first = fit_linear_head_cached(vectors, labels, 5, 1e-3, 40, fits)
    (key,) = fits.data
    fits.data[key] = b"not an npz file"
    again = fit_linear_head_cached(vectors, labels, 5, 1e-3, 40, fits)
    assert again.weights.tobytes() == first.weights.tobytes()
    assert fits.data[key] != b"not an npz file"


def test_ivf_from_cached_centroids_serialises_as_a_trained_one() -> None:
    vectors = clustered(3000, seed=5)
    fits = DictFits()
    stores = [FaissStore(32, "m", ann_threshold=1000, ann=AnnParams(), fits=f) for f in (fits, fits, None)]
    for store in stores:
        store.add(range(3000), vectors)
    assert all(s.backend == "ivf" for s in stores)
    assert fits.hits == 1
    assert stores[0].checksum() == stores[1].checksum() == stores[2].checksum()
    queries = clustered(20, seed=6)
    assert np.array_equal(stores[1].search(queries, 5)[1], stores[2].search(queries, 5)[1])


def test_guard_builds_from_a_sqlite_cache_refit_nothing_and_equal(tmp_path: Path) -> None:
    config = GuardConfig(ann_threshold=len(TOY_EXEMPLARS) - 2, ann_nlist=2)
    encoder = HashingEncoder()
    path = tmp_path / "cache.sqlite3"
    plain = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, config)
    guards = [
        Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, config, cache=SqliteEmbeddingCache(path)) for _ in range(2)
    ]
    assert guards[0].store.backend == "ivf"  # type: ignore[attr-defined]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM fits").fetchone()[0] == 2  # the head and the centroids
    finally:
        conn.close()
    for guard in guards:
        assert guard.checksum() == plain.checksum()
        assert guard.head is not None and plain.head is not None
        assert guard.head.weights.tobytes() == plain.head.weights.tobytes()


def test_sqlite_fits_keep_the_newest(tmp_path: Path) -> None:
    clock = iter(range(1000, 2000))
    cache = SqliteEmbeddingCache(tmp_path / "cache.sqlite3", clock=lambda: float(next(clock)))
    for n in range(MAX_FITS + 3):
        cache.put_fit(n.to_bytes(4, "big"), b"x" * n)
    assert cache.get_fit((0).to_bytes(4, "big")) is None
    assert cache.get_fit((MAX_FITS + 2).to_bytes(4, "big")) == b"x" * (MAX_FITS + 2)
    assert cache.get_fit(b"absent") is None
