"""Input normalisation and long-input windowing.

Normalisation defeats cheap evasion before encoding: full-width and compatibility forms (NFKC), zero-width joiners
and control characters, Cyrillic/Greek look-alikes inside Latin words, and letter-spaced words ("k i l l").
Windowing removes the blind spot past the model's token limit: a long text is scored as overlapping windows and
the worst (most unsafe) window decides.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

# Zero-width and invisible formatting characters that survive NFKC and are used to split words past filters.
INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u034f\u180e\u17b4\u17b5\u115f\u1160\u3164"),
    None,
)
# ASCII's control characters (the only category-C characters below 0x80): line and tab breaks become spaces, the
# rest are dropped, as the per-character rule in `normalize_text` does for any text.
ASCII_CONTROLS = {c: (" " if chr(c) in "\n\r\t\v\f" else None) for c in (*range(0x20), 0x7F)}
NORMALIZATION_VERSION = 2
"""Bump when `normalize_text` changes output: indexed exemplar vectors depend on it, so saved indexes go stale."""


# Cyrillic and Greek letters that render like a Latin letter in common fonts (a subset of Unicode's confusables.txt
# chosen for shape, not sound). They are folded only inside a word that also holds a Latin letter, the signature of
# a mixed-script evasion ("kіll" with a Cyrillic і); a word written wholly in Cyrillic or Greek is genuine text.
_CONFUSABLES = {
    # Cyrillic lower case
    "а": "a", "в": "b", "е": "e", "ё": "e", "і": "i", "ї": "i", "ј": "j", "к": "k", "м": "m", "н": "h",
    "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l",
    "ԛ": "q", "ԝ": "w", "ү": "y",
    # Cyrillic upper case
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "І": "I", "Ї": "I", "Ј": "J", "К": "K", "М": "M", "Н": "H",
    "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "Ԁ": "D", "Ү": "Y", "Ӏ": "l",
    # Greek lower case
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "γ": "y", "ω": "w",
    # Greek upper case
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip
_FOLD = str.maketrans(_CONFUSABLES)
MIXED_WORD = re.compile(r"\w*[" + "".join(_CONFUSABLES) + r"]\w*")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")

# Three or more single letters separated by a space, or by a dot / dash / underscore / asterisk (optionally spaced):
# "k i l l", "K.I.L.L", "k-i-l-l", "k * i * l * l". A letter is Latin or a look-alike ("k і l l"); a run without any
# Latin letter is left alone (Russian "а в с" stays). Each letter must end its word ((?!\w)), so the pattern never
# backtracks over a long run (linear time on hostile input). The whole run is joined, including a real one-letter
# word next to it ("k i l l a man" -> "killa man": WordPiece still reads "kill" + "##a").
_LETTER = "[A-Za-z" + "".join(_CONFUSABLES) + "]"
_SEP = r"(?: ?[.\-_*·] ?| )"
_SPACED = re.compile(r"(?<!\w)" + _LETTER + r"(?!\w)(?:" + _SEP + _LETTER + r"(?!\w)){2,}")
_SEPARATORS = re.compile(r"[ .\-_*·]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def fold_word(match: re.Match[str]) -> str:
    word = match.group()
    return word.translate(_FOLD) if _LATIN.search(word) else word


def _join_letters(match: re.Match[str]) -> str:
    run = match.group()
    return _SEPARATORS.sub("", run) if _ASCII_LETTER.search(run) else run


def drop_controls(text: str) -> str:
    """NFKC; zero-width, control and format characters dropped, line and tab breaks turned into spaces."""
    text = unicodedata.normalize("NFKC", text).translate(INVISIBLE).translate(ASCII_CONTROLS)
    # Only non-ASCII characters need the per-character category look-up (ASCII's controls went in the translate):
    # a 99,000-character text with a few curly quotes took 0.26 s in a per-character scan of the whole text.
    return _NON_ASCII_RUN.sub(_drop_category_c, text)


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _drop_category_c(match: re.Match[str]) -> str:
    return "".join([ch for ch in match.group() if not unicodedata.category(ch).startswith("C")])


def normalize_text(text: str) -> str:
    """NFKC, drop zero-width / control / format characters, fold look-alikes, join spaced letters, collapse spaces.

    Case is preserved (the encoder's tokenizer lower-cases itself); newlines and tabs become single spaces. Cyrillic
    and Greek look-alikes become Latin only inside words that also contain a Latin letter (genuine Russian or Greek
    is untouched). Runs of three or more single letters ("k i l l", "k.i.l.l", "k-i-l-l") are joined into one word,
    which also joins single-letter lists ("a b c" -> "abc"); two letters ("e.g.", "I a") are left alone.
    """
    # ASCII (the common case): NFKC leaves it as it is and no invisible character is ASCII, so one translate does
    # what the per-character scan does (tests/index/test_text.py checks they agree)
    text = text.translate(ASCII_CONTROLS) if text.isascii() else drop_controls(text)
    # str.split() splits on exactly the characters regex \s matches (checked over every code point), 4x faster
    text = _SPACED.sub(_join_letters, " ".join(text.split()))
    # ASCII text has no look-alikes to fold: skip the second scan on the common path
    return text if text.isascii() else MIXED_WORD.sub(fold_word, text)


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


# A sentence ends at . ! ? or … (closing quotes and brackets stay with it) followed by white space; a line break
# always ends one (list items, chat turns, verses). Abbreviations ("e.g. this") split too: a unit a little too short
# only costs a little context.
_SENTENCE_BREAK = re.compile(
    r"(?:(?<=[.!?\u2026])|(?<=[.!?\u2026][\"'\u201d\u2019)\]]))\s+|\s*[\n\r\v\f\u2028\u2029]\s*"
)


def sentence_spans(text: str, clean: str) -> list[tuple[int, int]]:
    """Character spans in `clean` (= `normalize_text(text)`) of the sentences and lines of `text`, in order.

    Normalisation turns line breaks into spaces, so breaks are found in the raw text and each normalised piece is
    located in `clean` (scanning forward). A piece that normalisation merged with its neighbour (a letter-spaced
    word across a line break) is not found and yields no span: sentence units add to windows, they never replace
    them, so a missing unit loses nothing.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in _SENTENCE_BREAK.split(text):
        part = normalize_text(piece)
        if not part:
            continue
        start = clean.find(part, cursor)
        if start < 0:
            continue
        cursor = start + len(part)
        spans.append((start, cursor))
    return spans
