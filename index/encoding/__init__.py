"""Encoders: the `Encoder` protocol and deterministic test encoder, the ONNX Runtime encoder that serves, the export
of a sentence-transformers model to ONNX (fp32 + int8), and model manifests with their checksums."""

from __future__ import annotations

from index.encoding.encoder import (
    Encoder,
    HashingEncoder,
    embed_texts,
    split_windows,
    window_char_spans,
    window_geometry,
)
from index.encoding.onnx import OnnxEncoder

__all__ = [
    "Encoder",
    "HashingEncoder",
    "OnnxEncoder",
    "embed_texts",
    "split_windows",
    "window_char_spans",
    "window_geometry",
]
