"""Input limits shared by the classify, moderation and topic use cases (each error names the field and limit)."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from index import normalize_text
from service.errors import InvalidRequestError
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch: int
    max_text_chars: int
    max_examples: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_batch, settings.max_text_chars, settings.max_examples)

    def check_texts(self, field: str, texts: Sequence[str], max_items: int, setting: str) -> None:
        if len(texts) > max_items:
            raise InvalidRequestError(
                f"`{field}` has {len(texts)} items; the limit is {max_items} ({setting}); split the request", field
            )
        for n, text in enumerate(texts):
            where = f"{field}[{n}]" if field.endswith("s") or field == "input" else field
            if len(text) > self.max_text_chars:
                raise InvalidRequestError(
                    f"`{where}` has {len(text)} characters; the limit is {self.max_text_chars} "
                    "(LIGHTGUARD_MAX_TEXT_CHARS)",
                    where,
                )
            if not has_content(text):
                raise InvalidRequestError(f"`{where}` is empty or only whitespace; send some text", where)

    def check_batch(self, field: str, texts: Sequence[str]) -> None:
        if not texts:
            raise InvalidRequestError(f"`{field}` is empty; send at least one text", field)
        self.check_texts(field, texts, self.max_batch, "LIGHTGUARD_MAX_BATCH")

    def check_examples(self, field: str, texts: Sequence[str]) -> None:
        self.check_texts(field, texts, self.max_examples, "LIGHTGUARD_MAX_EXAMPLES")


# a word character, except the Hangul fillers, which render as nothing and which normalisation drops
_WORD_CHARACTER = re.compile(r"[^\W\u115f\u1160\u3164\uffa0]")


def has_content(text: str) -> bool:
    """Whether `text` is non-empty once normalised. A word character (a letter or digit of any script) survives
    normalisation, and finding one ends the scan at once; only a text without any is normalised (on the event loop:
    normalising 100 texts of 99,000 characters here took seconds and stalled every other request)."""
    return _WORD_CHARACTER.search(text) is not None or bool(normalize_text(text))


@functools.cache
def content_character_class() -> str:
    """A regex character class of the characters that are content by `has_content`'s rule: a word character, or
    one that normalisation keeps. A text is accepted exactly when it holds one of them, so the OpenAPI schema states
    the rule with this class (built from this process's Unicode tables, ~0.8 s once: unassigned, private-use and
    surrogate code points are dropped by normalisation, and no hand-written pattern can list them).

    Characters above U+FFFF appear as themselves: ECMAScript engines read the pattern with the `u` flag, as JSON
    Schema validators do.
    """
    kept: list[int] = []
    for code in range(0x110000):
        char = chr(code)
        if _WORD_CHARACTER.match(char) or (unicodedata.category(char)[0] != "C" and normalize_text(char)):
            kept.append(code)
    ranges: list[list[int]] = []
    for code in kept:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def literal(code: int) -> str:
        return f"\\u{code:04x}" if code < 0x10000 else chr(code)

    return "[" + "".join(literal(a) if a == b else f"{literal(a)}-{literal(b)}" for a, b in ranges) + "]"
