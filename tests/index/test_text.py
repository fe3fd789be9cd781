"""Input normalisation and windowing: evasion characters are removed, windows cover every token."""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from index import HashingEncoder, normalize_text, split_windows, text_digest
from index.errors import InvalidInputError
from index.text import ASCII_CONTROLS, INVISIBLE, drop_controls, sentence_spans, window_spans


def test_normalize_strips_zero_width_and_control_characters() -> None:
    assert normalize_text("k\u200bi\u200dl\ufeffl") == "kill"
    assert normalize_text("a\x00b\x07c") == "abc"
    assert normalize_text("  line one\n\tline   two \r\n") == "line one line two"


def test_normalize_folds_full_width_and_compatibility_forms() -> None:
    assert normalize_text("ｈｏｗ ｔｏ ｍａｋｅ ａ ｂｏｍｂ") == "how to make a bomb"
    assert normalize_text("ﬁre") == "fire"


def test_text_digest_matches_the_exclude_convention() -> None:
    import hashlib

    expected = hashlib.sha256(b"hello world").hexdigest()[:16]
    assert text_digest("  Hello\n  WORLD ") == expected
    assert text_digest("ＨＥＬＬＯ world") == expected


@given(n_tokens=st.integers(0, 400), window=st.integers(1, 50), overlap=st.integers(0, 49))
def test_windows_cover_every_token_and_respect_the_limit(n_tokens: int, window: int, overlap: int) -> None:
    stride = max(1, window - min(overlap, window - 1))
    spans = [(i * 2, i * 2 + 1) for i in range(n_tokens)]
    windows = window_spans(spans, window, stride)
    if n_tokens == 0:
        assert windows == []
        return
    covered = set()
    for a, b in windows:
        inside = [i for i, (s, e) in enumerate(spans) if s >= a and e <= b]
        assert len(inside) <= window
        covered.update(inside)
    assert covered == set(range(n_tokens))


def test_split_windows_keeps_short_text_whole_and_splits_long_text() -> None:
    enc = HashingEncoder(dim=16, max_tokens=12)
    assert split_windows(enc, "a short text") == ["a short text"]
    long_text = " ".join(f"w{i}" for i in range(100))
    parts = split_windows(enc, long_text)
    assert len(parts) > 1
    assert all(len(spans) <= 10 for spans in enc.token_spans(parts))
    assert parts[-1].endswith("w99")
    with pytest.raises(InvalidInputError, match="single str"):
        enc.token_spans(long_text)  # a str is a sequence of one-letter texts: refused, not tokenised letter by letter


def test_sentence_spans_follow_sentences_and_lines() -> None:
    text = 'First one. "Second?" he asked.\n- item one\n- item two\n\nLast line without a stop'
    clean = normalize_text(text)
    pieces = [clean[a:b] for a, b in sentence_spans(text, clean)]
    assert pieces == ["First one.", '"Second?"', "he asked.", "- item one", "- item two", "Last line without a stop"]


def test_sentence_spans_skip_a_piece_that_normalisation_merged() -> None:
    text = "Intro sentence here. k\ni\nl\nl the rest"  # letters spaced across line breaks join into "kill"
    clean = normalize_text(text)
    spans = sentence_spans(text, clean)
    assert clean[spans[0][0] : spans[0][1]] == "Intro sentence here."
    assert all(clean[a:b] in clean for a, b in spans)


@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=40), max_size=12))
def test_sentence_spans_are_ordered_disjoint_normalised_pieces(parts: list[str]) -> None:
    text = ". ".join(parts)
    clean = normalize_text(text)
    spans = sentence_spans(text, clean)
    assert all(0 <= a < b <= len(clean) for a, b in spans)
    assert all(b <= c for (_, b), (c, _) in itertools.pairwise(spans))
    assert all(clean[a:b] == normalize_text(clean[a:b]) for a, b in spans)


@given(st.text(st.characters(max_codepoint=0x7F)))
def test_the_ascii_fast_path_drops_what_the_general_scan_drops(text: str) -> None:
    assert text.translate(ASCII_CONTROLS) == drop_controls(text)


def _scan_every_character(text: str) -> str:
    """The rule `drop_controls` implements faster: NFKC, invisibles dropped, then every category-C character
    dropped, line and tab breaks turned into spaces."""
    text = unicodedata.normalize("NFKC", text).translate(INVISIBLE)
    return "".join(
        [ch if not unicodedata.category(ch).startswith("C") else (" " if ch in "\n\r\t\v\f" else "") for ch in text]
    )


@given(st.text(st.characters(codec=None, exclude_categories=["Cs"])))
def test_drop_controls_follows_the_per_character_rule(text: str) -> None:
    assert drop_controls(text) == _scan_every_character(text)


def test_drop_controls_follows_the_per_character_rule_for_every_code_point() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert drop_controls(every) == _scan_every_character(every)


def test_str_split_breaks_on_exactly_the_regex_whitespace() -> None:
    """normalize_text collapses spaces with str.split(); it must split where the regex \\s it replaced matched."""
    space = re.compile(r"\s")
    assert [c for c in range(sys.maxunicode + 1) if bool(space.fullmatch(chr(c))) != chr(c).isspace()] == []
