"""Input limits shared by the classify, moderation and topic use cases (each error names the field and limit)."""

from __future__ import annotations

import re
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
            if not _has_content(text):
                raise InvalidRequestError(f"`{where}` is empty or only whitespace; send some text", where)

    def check_batch(self, field: str, texts: Sequence[str]) -> None:
        if not texts:
            raise InvalidRequestError(f"`{field}` is empty; send at least one text", field)
        self.check_texts(field, texts, self.max_batch, "LIGHTGUARD_MAX_BATCH")

    def check_examples(self, field: str, texts: Sequence[str]) -> None:
        self.check_texts(field, texts, self.max_examples, "LIGHTGUARD_MAX_EXAMPLES")


# a word character, except the Hangul fillers, which render as nothing and which normalisation drops
_WORD_CHARACTER = re.compile(r"[^\W\u115f\u1160\u3164\uffa0]")


def _has_content(text: str) -> bool:
    """Whether `text` is non-empty once normalised. A word character (a letter or digit of any script) survives
    normalisation, and finding one ends the scan at once; only a text without any is normalised (on the event loop:
    normalising 100 texts of 99,000 characters here took seconds and stalled every other request)."""
    return _WORD_CHARACTER.search(text) is not None or bool(normalize_text(text))
