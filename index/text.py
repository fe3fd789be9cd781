"""Input normalisation and long-input windowing.

Normalisation defeats cheap evasion (full-width forms, zero-width joiners, control characters) before encoding.
Windowing removes the blind spot past the model's token limit: a long text is scored as overlapping windows and
the worst (most unsafe) window decides.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

# Zero-width and invisible formatting characters that survive NFKC and are used to split words past filters.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u034f\u180e\u17b4\u17b5\u115f\u1160\u3164"),
    None,
)
_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, drop zero-width / control / format characters, collapse whitespace, strip.

    Case is preserved (the encoder's tokenizer lower-cases itself); newlines and tabs become single spaces.
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    kept = [ch if not unicodedata.category(ch).startswith("C") else (" " if ch in "\n\r\t\v\f" else "") for ch in text]
    return _WS.sub(" ", "".join(kept)).strip()


def text_digest(text: str) -> str:
    """First 16 hex of SHA-256 over NFKC, lower-cased, whitespace-joined text (the EXCLUDE.sha256 convention)."""
    norm = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def window_spans(token_spans: Sequence[tuple[int, int]], window: int, stride: int) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of at most `window` tokens, each starting `stride` tokens later.

    Args:
        token_spans: (start, end) character offsets of each token, in order.
        window: maximum tokens per window (> 0).
        stride: tokens between window starts (0 < stride <= window); window - stride tokens overlap.

    Returns:
        A list of (start, end) character spans covering every token; one span when the text fits one window.
    """
    if window <= 0 or not 0 < stride <= window:
        raise ValueError(f"need window > 0 and 0 < stride <= window, got window={window} stride={stride}")
    n = len(token_spans)
    if n == 0:
        return []
    if n <= window:
        return [(token_spans[0][0], token_spans[-1][1])]
    spans = []
    start = 0
    while True:
        end = min(start + window, n)
        spans.append((token_spans[start][0], token_spans[end - 1][1]))
        if end == n:
            return spans
        start += stride
