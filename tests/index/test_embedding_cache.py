"""The embedding cache: vectors by (encoder key, normalised text), read back bit for bit, shared across guards and
processes, never a failed build when unreadable, bounded, and never filled by classify traffic."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from index import Guard, HashingEncoder, SqliteEmbeddingCache
from index.encoding import embed_cached, embed_texts, encoder_key
from tests import conftest
from tests.conftest import TOY_EXEMPLARS, TOY_LABELS

BACKGROUND = ["tell me a joke", "what time is it"]


class CountingEncoder(conftest.CountingEncoder):
    """The counting encoder at the toy guard's dimensions."""

    def __init__(self, dim: int = 128, max_tokens: int = 64) -> None:
        super().__init__(dim, max_tokens)


class Lookups:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def __call__(self, hits: int, misses: int) -> None:
        self.hits += hits
        self.misses += misses


def test_second_lookup_hits_and_vectors_are_bit_identical(tmp_path: Path) -> None:
    lookups = Lookups()
    cache = SqliteEmbeddingCache(tmp_path / "vectors.sqlite3", on_lookup=lookups)
    encoder = CountingEncoder()
    texts = ["how do I bake bread", "  how do I  bake bread ", "a poem about rain", "x" * 300]
    first = embed_cached(encoder, texts, 2, cache)
    # the first two normalise to the same text: embedded once, counted as two texts embedded
    assert (first.embedded, first.cached, encoder.texts) == (4, 0, 3)
    assert (lookups.hits, lookups.misses) == (0, 3)
    again = embed_cached(encoder, texts, 2, SqliteEmbeddingCache(tmp_path / "vectors.sqlite3", on_lookup=lookups))
    assert (again.embedded, again.cached, encoder.texts) == (0, 4, 3)
    assert (lookups.hits, lookups.misses) == (3, 3)
    plain = embed_texts(HashingEncoder(dim=128, max_tokens=64), texts, 2)
    assert again.vectors.dtype == np.float32
    assert again.vectors.tobytes() == first.vectors.tobytes() == plain.tobytes()


def test_a_rebuild_with_the_same_model_embeds_nothing(tmp_path: Path) -> None:
    cache = SqliteEmbeddingCache(tmp_path / "vectors.sqlite3")
    encoder = CountingEncoder()
    first = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, background_texts=BACKGROUND, cache=cache)
    assert encoder.texts == len(TOY_EXEMPLARS) + len(BACKGROUND)
    encoder.texts = 0
    # another process, another home: a new cache object on the same file, a new guard
    second = Guard.build(
        encoder, TOY_LABELS, TOY_EXEMPLARS, background_texts=BACKGROUND, cache=SqliteEmbeddingCache(cache.path)
    )
    assert encoder.texts == 0
    assert second.checksum() == first.checksum()
    assert second.background.tobytes() == first.background.tobytes()


def test_another_model_or_token_limit_misses(tmp_path: Path) -> None:
    cache = SqliteEmbeddingCache(tmp_path / "vectors.sqlite3")
    Guard.build(CountingEncoder(), TOY_LABELS, TOY_EXEMPLARS, cache=cache)
    for other in (CountingEncoder(dim=64), CountingEncoder(max_tokens=8)):
        assert encoder_key(other) != encoder_key(CountingEncoder())
        Guard.build(other, TOY_LABELS, TOY_EXEMPLARS, cache=cache)
        assert other.texts == len(TOY_EXEMPLARS)


def test_topic_examples_use_the_cache_and_classify_does_not_fill_it(tmp_path: Path) -> None:
    cache = SqliteEmbeddingCache(tmp_path / "vectors.sqlite3")
    encoder = CountingEncoder()
    guard = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, cache=cache)
    held = cache.count()
    guard.classify(["a question nobody asked before", "another one"])
    assert cache.count() == held
    encoder.texts = 0
    first = guard.embed(["how long to proof sourdough", "best flour for pizza"])
    assert encoder.texts == 2 and cache.count() == held + 2
    assert guard.embed(["how long to proof sourdough"]).tobytes() == first[:1].tobytes()
    assert encoder.texts == 2


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_corrupt_cache_file_degrades_to_embedding(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vectors.sqlite3"
    path.write_bytes(content)
    encoder = CountingEncoder()
    cache = SqliteEmbeddingCache(path)
    with caplog.at_level(logging.WARNING, logger="index.encoding.cache"):
        guard = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, background_texts=BACKGROUND, cache=cache)
    assert encoder.texts == len(TOY_EXEMPLARS) + len(BACKGROUND)
    assert cache.broken is not None
    assert any("embedding cache" in r.getMessage() and "unusable" in r.getMessage() for r in caplog.records)
    plain = Guard.build(HashingEncoder(dim=128, max_tokens=64), TOY_LABELS, TOY_EXEMPLARS, background_texts=BACKGROUND)
    assert guard.checksum() == plain.checksum()
    assert path.read_bytes() == content  # left for the operator to look at, not overwritten


def test_an_unwritable_location_degrades_to_embedding(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache's folder should be")
    cache = SqliteEmbeddingCache(blocker / "vectors.sqlite3")
    encoder = CountingEncoder()
    Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, cache=cache)
    assert encoder.texts == len(TOY_EXEMPLARS)
    assert cache.broken is not None and cache.count() == 0


def test_the_cache_is_bounded_and_evicts_the_least_recently_used(tmp_path: Path) -> None:
    day = [0]
    cache = SqliteEmbeddingCache(tmp_path / "vectors.sqlite3", max_entries=10, clock=lambda: day[0] * 86_400.0)
    encoder = HashingEncoder()
    key = encoder_key(encoder)
    batches = [[f"text {n} {i}" for i in range(5)] for n in range(4)]
    for n, texts in enumerate(batches[:2]):
        day[0] = n
        cache.put(key, texts, encoder.encode(texts))
    day[0] = 2
    assert cache.get(key, batches[0], encoder.dim)[1].all()  # batch 0 used again today, batch 1 not since day 1
    for n, texts in enumerate(batches[2:], start=3):
        day[0] = n
        cache.put(key, texts, encoder.encode(texts))
        assert cache.count() <= 10
    assert not cache.get(key, batches[1], encoder.dim)[1].any()
    assert cache.get(key, batches[3], encoder.dim)[1].all()


def _write_from_process(path: str, worker: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    encoder = HashingEncoder()
    cache = SqliteEmbeddingCache(Path(path), busy_timeout_s=60)
    key = encoder_key(encoder)
    barrier.wait()
    # overlapping texts in small transactions, so the two writers interleave
    for start in range(0, 400, 10):
        texts = [f"shared text {i}" for i in range(start, start + 10)] + [f"worker {worker} text {start}"]
        cache.put(key, texts, encoder.encode(texts))
        found, hit = cache.get(key, texts, encoder.dim)
        assert hit.all() and found.tobytes() == encoder.encode(texts).tobytes()
    assert cache.broken is None, cache.broken


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_write_from_process, args=(str(path), n, barrier)) for n in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0]
    encoder = HashingEncoder()
    texts = [f"shared text {i}" for i in range(400)] + [
        f"worker {w} text {s}" for w in range(2) for s in range(0, 400, 10)
    ]
    cache = SqliteEmbeddingCache(path)
    found, hit = cache.get(encoder_key(encoder), texts, encoder.dim)
    assert hit.all()
    assert found.tobytes() == encoder.encode(texts).tobytes()
    assert cache.count() == len(texts)


@pytest.mark.model
def test_an_onnx_encoders_key_names_its_arithmetic(onnx_base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from index.encoding import onnx as onnx_encoder

    encoder = onnx_encoder.OnnxEncoder(onnx_base_dir, "int8", threads=1)
    key = encoder_key(encoder)
    assert "onnxruntime " in key and key != encoder_key(onnx_encoder.OnnxEncoder(onnx_base_dir, "fp32", threads=1))
    monkeypatch.setattr(onnx_encoder, "ARITHMETIC_REVISION", onnx_encoder.ARITHMETIC_REVISION + 1)
    assert encoder_key(encoder) != key  # pooling or padding changed: cached vectors are not reused
