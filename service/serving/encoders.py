"""The one place that picks the encoder (tests inject their own into create_app instead) and the embedding cache
(with the seed-vector pack) from the settings."""

from __future__ import annotations

from collections.abc import Callable

from index import (
    EmbeddingCache,
    Encoder,
    HashingEncoder,
    ModelNotFoundError,
    OnnxEncoder,
    SeededEmbeddingCache,
    SeedVectorPack,
    SqliteEmbeddingCache,
)
from service.settings import Settings


def build_encoder(settings: Settings, threads: int | None = None) -> Encoder:
    """`hashing` → the deterministic test encoder; `onnx` → the ONNX Runtime encoder on LIGHTGUARD_MODEL_DIR, on
    `threads` threads (default LIGHTGUARD_THREADS, else the CPU count), spinning within a run unless
    LIGHTGUARD_ENCODER_SPIN is false."""
    if settings.encoder == "hashing":
        return HashingEncoder()
    model_dir = settings.resolved_model_dir
    if not model_dir.is_dir():
        raise ModelNotFoundError(
            f"no model directory at {model_dir}; export the model first (see README) or set LIGHTGUARD_MODEL_DIR"
        )
    return OnnxEncoder(
        model_dir,
        variant=settings.onnx_variant,
        threads=settings.threads if threads is None else threads,
        spin=settings.encoder_spin,
    )


def build_embedding_cache(
    settings: Settings, on_lookup: Callable[[int, int], None] | None = None
) -> EmbeddingCache | None:
    """The cache of exemplar vectors LIGHTGUARD_EMBEDDING_CACHE names (None when `off`), with the seed-vector pack
    LIGHTGUARD_SEED_VECTORS names behind it (unless `off`); both opened on first use, and an unreadable one only logs
    a warning (texts are then embedded). `on_lookup(hits, misses)` after each lookup of the cache file."""
    path = settings.resolved_embedding_cache
    cache = None if path is None else SqliteEmbeddingCache(path, settings.embedding_cache_max_entries, on_lookup)
    pack = settings.resolved_seed_vectors
    return cache if pack is None else SeededEmbeddingCache(cache, SeedVectorPack(pack))
