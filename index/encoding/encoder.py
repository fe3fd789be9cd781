"""Encoder protocol (the seam between text and vectors) and a deterministic hashing encoder for tests.

Serving uses `OnnxEncoder` (index/encoding/onnx.py, ONNX Runtime + tokenizers, no torch); training uses
sentence-transformers (index/training.py). All encoders return L2-normalised float32 rows, so an inner product
is a cosine similarity in [-1, 1].
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from index.errors import InvalidInputError
from index.text import normalize_text, window_spans
from index.types import Vectors


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into L2-normalised vectors."""

    @property
    def model_id(self) -> str:
        """Stable identity of the weights (name + checksum); an index built with another id is stale."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Tokens (special tokens included) the model reads; longer texts are windowed, never truncated."""
        ...

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        """Embed texts (each already within `max_tokens`) as a (len(texts), dim) float32 L2-normalised matrix."""
        ...

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Per text, the character (start, end) offsets of the model's tokens in it, special tokens excluded (the
        whole text: no truncation). One call for many texts: a tokenizer call has a fixed cost."""
        ...

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], batch_size: int = 32
    ) -> tuple[Vectors, list[Vectors]]:
        """`encode(texts)`, and for each text one vector per character span of it, from the same forward pass.

        A span's vector pools the text's token outputs that lie inside the span (L2-normalised): the tokens have
        read the whole text, so a sentence is embedded in its context at no extra model cost ("late chunking").
        Returns (text vectors, per text a (len(spans[i]), dim) matrix); a span holding no token is a zero row.
        """
        ...


def embed_texts(
    encoder: Encoder, texts: Sequence[str], batch_size: int, progress: Callable[[int, int], None] | None = None
) -> Vectors:
    """Encode normalised texts in batches (no windowing: exemplars are indexed as written, truncated by the encoder).

    Texts are batched in length order (`encode_in_length_order`). `progress(done, total)` after each batch.
    `index.encoding.cache.embed_cached` does the same through an embedding cache.
    """
    return encode_in_length_order(encoder, normalized_texts(texts), batch_size, progress)


def normalized_texts(texts: Sequence[str]) -> list[str]:
    """What the encoder sees of exemplar texts: `normalize_text`, or the text itself if that leaves nothing."""
    return [normalize_text(t) or t for t in texts]


def encode_in_length_order(
    encoder: Encoder, texts: Sequence[str], batch_size: int, progress: Callable[[int, int], None] | None = None
) -> Vectors:
    """Encode texts as given, in batches of similar length (a mixed batch of one 256-token and thirty 20-token
    texts costs as much as thirty-one 256-token ones); rows in the order of `texts`."""
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = encoder.encode([texts[i] for i in rows], batch_size=batch_size)
        if progress is not None:
            progress(min(start + batch_size, len(texts)), len(texts))
    return out


def split_windows(encoder: Encoder, text: str, overlap: float = 0.25, window_tokens: int | None = None) -> list[str]:
    """Split `text` into overlapping windows that each fit the encoder's token limit (see `window_char_spans`)."""
    return [text[a:b] for a, b in window_char_spans(encoder, text, overlap, window_tokens)] or [text]


def window_geometry(encoder: Encoder, overlap: float = 0.25, window_tokens: int | None = None) -> tuple[int, int]:
    """Tokens per window and between window starts (see `window_char_spans`)."""
    window = max(1, encoder.max_tokens - 2)
    if window_tokens is not None:
        window = max(1, min(window, window_tokens))
    return window, max(1, int(window * (1.0 - overlap)))


def window_char_spans(
    encoder: Encoder,
    text: str,
    overlap: float = 0.25,
    window_tokens: int | None = None,
    tokens: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of `text` that each fit the encoder's token limit.

    Two tokens of headroom are kept for [CLS]/[SEP]; `window_tokens` may make windows shorter than the model allows,
    because mean pooling dilutes one bad sentence in a long benign window. Windows overlap by `overlap` of their
    length so a sentence cut at one window's edge is whole in the next. A text without tokens is one span.
    `tokens`: `encoder.token_spans([text])[0]` when the caller already has it.
    """
    window, stride = window_geometry(encoder, overlap, window_tokens)
    tokens = encoder.token_spans([text])[0] if tokens is None else tokens
    return window_spans(tokens, window, stride) or [(0, len(text))]


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class HashingEncoder:
    """Deterministic bag-of-words encoder (signed feature hashing of lower-cased words and bigrams).

    Texts that share words are close; paraphrases are not. Fast and dependency-free: for unit tests and smoke runs,
    never for production.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 256) -> None:
        self._dim = dim
        self._max_tokens = max_tokens

    @property
    def model_id(self) -> str:
        return f"hashing-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if isinstance(texts, str):
            raise InvalidInputError("token_spans() takes a sequence of texts, got a single str; wrap it in a list")
        return [[m.span() for m in _WORD.finditer(text)] for text in texts]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [m.group().lower() for m in _WORD.finditer(text)][: self._max_tokens]
            feats = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
            for feat in feats:
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
            if not feats:
                out[row, 0] = 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.asarray(out / norms, dtype=np.float32)

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], batch_size: int = 32
    ) -> tuple[Vectors, list[Vectors]]:
        # bag of words has no context: a span's vector is the span's text encoded alone (one `encode` call in all)
        pieces = [text[a:b] for text, text_spans in zip(texts, spans, strict=True) for a, b in text_spans]
        vectors = self.encode([*texts, *pieces], batch_size)
        cuts = np.cumsum([len(s) for s in spans])[:-1]
        return vectors[: len(texts)], np.split(vectors[len(texts) :], cuts) if len(spans) else []
