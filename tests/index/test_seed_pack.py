"""Seed-vector packs (index.encoding.seed_pack): written and read back, ignored (never fatal) when made for another
encoder or damaged, covering part of a build, copied into the embedding cache, and shipping the build's fits."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import index.scoring.head as head_module
from index import Guard, SeededEmbeddingCache, SeedPackRecorder, SeedVectorPack, SqliteEmbeddingCache, write_seed_pack
from index.cpu import int8_isa
from index.encoding import encoder_key
from index.encoding.encoder import normalized_texts
from index.encoding.seed_pack import SeedPackManifest
from tests.conftest import TOY_EXEMPLARS, TOY_LABELS, CountingEncoder

BACKGROUND = ["tell me a joke", "what time is it"]
TEXTS = [e.text for e in TOY_EXEMPLARS] + BACKGROUND


def pack_of(path: Path, encoder: CountingEncoder, texts: list[str], fits: dict[bytes, bytes] | None = None) -> Path:
    clean = normalized_texts(texts)
    vectors = dict(zip(clean, encoder.encode(clean), strict=True))
    write_seed_pack(path, encoder_key(encoder), vectors, fits)
    encoder.texts = 0
    return path


def build(encoder: CountingEncoder, cache: object) -> Guard:
    return Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, background_texts=BACKGROUND, cache=cache)  # type: ignore[arg-type]


def test_round_trip_gives_float16_rows_by_text(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    path = pack_of(tmp_path / "seed.json", encoder, TEXTS)
    clean = normalized_texts(TEXTS)
    expected = encoder.encode(clean)
    pack = SeedVectorPack(path)
    got, hit = pack.get(encoder_key(encoder), [*reversed(clean), "never packed"], encoder.dim)
    assert hit.tolist() == [True] * len(clean) + [False]
    assert np.array_equal(got[: len(clean)], expected[::-1].astype(np.float16).astype(np.float32))
    assert not got[-1].any()
    manifest = json.loads(path.read_text())
    assert manifest["count"] == len(set(clean)) and manifest["dtype"] == "float16" and manifest["dim"] == encoder.dim
    assert manifest["made_on"] == int8_isa()  # which kernels made the vectors (seed_pack_drift prints it)


def test_taking_a_pack_logs_which_kernels_made_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    encoder = CountingEncoder()
    pack = SeedVectorPack(pack_of(tmp_path / "seed.json", encoder, TEXTS))
    with caplog.at_level(logging.INFO, logger="index.encoding.seed_pack"):
        pack.get(encoder_key(encoder), normalized_texts(TEXTS), encoder.dim)
        pack.get(encoder_key(encoder), normalized_texts(TEXTS), encoder.dim)
    lines = [r.getMessage() for r in caplog.records if "int8 kernels" in r.getMessage()]
    isa = int8_isa()
    assert lines == [
        f"seed vectors {tmp_path / 'seed.json'}: {len(TEXTS)} texts, computed with {isa} int8 kernels (this CPU: {isa})"
    ]


def test_a_manifest_from_before_made_on_still_reads(tmp_path: Path) -> None:
    path = pack_of(tmp_path / "seed.json", CountingEncoder(), TEXTS)
    manifest = json.loads(path.read_text())
    del manifest["made_on"]
    path.write_text(json.dumps(manifest))
    assert SeedPackManifest.read(path).made_on == ""


def test_same_inputs_write_the_same_bytes(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    first = pack_of(tmp_path / "a.json", encoder, TEXTS).with_suffix(".bin").read_bytes()
    second = pack_of(tmp_path / "b.json", encoder, list(reversed(TEXTS))).with_suffix(".bin").read_bytes()
    assert first == second


def test_pack_of_another_encoder_is_ignored_with_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = pack_of(tmp_path / "seed.json", CountingEncoder(dim=32), TEXTS)
    encoder = CountingEncoder()
    cache = SeededEmbeddingCache(None, SeedVectorPack(path))
    with caplog.at_level(logging.INFO, logger="index.encoding.seed_pack"):
        build(encoder, cache)
        build(encoder, cache)
    assert encoder.texts == 2 * len(set(TEXTS))
    ignored = [r for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 1 and ignored[0].levelno == logging.INFO
    assert "make seed-vectors" in ignored[0].getMessage()


def test_damaged_pack_warns_and_the_build_embeds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    encoder = CountingEncoder()
    path = pack_of(tmp_path / "seed.json", encoder, TEXTS)
    blob = bytearray(path.with_suffix(".bin").read_bytes())
    blob[-1] ^= 0xFF
    path.with_suffix(".bin").write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING):
        guard = build(encoder, SeededEmbeddingCache(None, SeedVectorPack(path)))
    assert len(guard) == len(TOY_EXEMPLARS)
    assert encoder.texts == len(set(TEXTS))
    assert any("sha256" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_missing_or_unreadable_manifest_is_not_fatal(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    (tmp_path / "bad.json").write_text("{not json")
    for path in (tmp_path / "absent.json", tmp_path / "bad.json"):
        pack = SeedVectorPack(path)
        build(encoder, SeededEmbeddingCache(None, pack))
        assert pack.broken is not None
    assert encoder.texts == 2 * len(set(TEXTS))


def test_only_texts_the_pack_lacks_are_embedded(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    packed = TEXTS[::2]
    path = pack_of(tmp_path / "seed.json", encoder, packed)
    build(encoder, SeededEmbeddingCache(None, SeedVectorPack(path)))
    assert encoder.texts == len(set(TEXTS) - set(packed))


def test_pack_hits_are_copied_into_the_cache(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    path = pack_of(tmp_path / "seed.json", encoder, TEXTS)
    cache = SqliteEmbeddingCache(tmp_path / "cache.sqlite3")
    build(encoder, SeededEmbeddingCache(cache, SeedVectorPack(path)))
    assert encoder.texts == 0
    assert cache.count() == len(set(TEXTS))
    build(encoder, cache)  # the cache alone now holds every vector
    assert encoder.texts == 0


def test_shipped_fits_are_taken_instead_of_refitting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as `lightguard export-seed-vectors` does: vectors first, then a build on the pack alone records its fits
    encoder = CountingEncoder()
    first = SeedPackRecorder()
    build(encoder, first)
    path = tmp_path / "seed.json"
    key = encoder_key(encoder)
    write_seed_pack(path, key, first.vectors)
    fits = SeedPackRecorder()
    fitted = build(encoder, SeededEmbeddingCache(fits, SeedVectorPack(path)))
    assert fits.fits, "the build fitted nothing: the test proves nothing"
    write_seed_pack(path, key, first.vectors, fits.fits)

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("refitted a head the pack ships")

    monkeypatch.setattr(head_module, "fit_linear_head", no_fit)
    encoder.texts = 0
    shipped = build(encoder, SeededEmbeddingCache(None, SeedVectorPack(path)))
    assert encoder.texts == 0
    assert fitted.head is not None and shipped.head is not None
    assert np.array_equal(fitted.head.weights, shipped.head.weights)
