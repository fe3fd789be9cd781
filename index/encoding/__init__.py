"""Encoders: the `Encoder` protocol and deterministic test encoder, the ONNX Runtime encoder that serves, the export
of a sentence-transformers model to ONNX (fp32 + int8), model manifests with their checksums, and the cache of
exemplar vectors by (model, text) and the committed seed-vector pack behind it."""

from __future__ import annotations

from index.encoding.cache import (
    CachedVectors,
    EmbeddingCache,
    SqliteEmbeddingCache,
    embed_cached,
    encoder_key,
)
from index.encoding.encoder import (
    Encoder,
    HashingEncoder,
    embed_texts,
    split_windows,
    window_char_spans,
    window_geometry,
)
from index.encoding.onnx import OnnxEncoder
from index.encoding.seed_pack import (
    SeededEmbeddingCache,
    SeedPackManifest,
    SeedPackRecorder,
    SeedVectorPack,
    write_seed_pack,
)

__all__ = [
    "CachedVectors",
    "EmbeddingCache",
    "Encoder",
    "HashingEncoder",
    "OnnxEncoder",
    "SeedPackManifest",
    "SeedPackRecorder",
    "SeedVectorPack",
    "SeededEmbeddingCache",
    "SqliteEmbeddingCache",
    "embed_cached",
    "embed_texts",
    "encoder_key",
    "split_windows",
    "window_char_spans",
    "window_geometry",
    "write_seed_pack",
]
