"""Is a text English? The encoder (all-MiniLM-L6-v2) was trained on English: a score for other text is not reliable.

An ASCII text of four or more words of which a fifth are common English function words ("the", "and", "you",
"how", ...) is English at once. Otherwise two signals: the share of letters outside the Latin script (Chinese,
Cyrillic, Arabic, Devanagari, ...), and
py3langid (langid.py's naive Bayes model over byte n-grams, 97 languages, numpy only: about 0.05 ms per prompt,
1.2 s to load once per process, on first use). A text is called non-English when most of its letters are not
Latin, or when langid names another language with probability >= `MIN_CONFIDENCE`; texts with too few letters
to tell, or that langid finds no language in ("zxx": codes, encodings), stay English (`code` None), so an operator
routing on the flag moves only texts that are confidently in another language. Rates on dev in docs/reliability.md.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any

MIN_CONFIDENCE = 0.7  # chosen on dev: at 0.7 every added row is another language, at 0.5 English slang is too
MIN_LETTERS = 12
MAX_CHARS = 2000  # langid reads this much of a text: cost stays flat for long inputs
_LATIN_END = 0x24F
_load_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Language:
    """The detected language: ISO 639-1 `code` (None when undetermined), and whether the text counts as English."""

    code: str | None
    english: bool
    confidence: float


ENGLISH = Language("en", True, 1.0)
UNDETERMINED = Language(None, True, 0.0)


@functools.cache
def _identifier() -> Any:
    with _load_lock:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


# The commonest English words that are rare in other languages written in Latin script: an ASCII text where they make
# up a fifth of the words is English without asking the model (~5 us instead of ~80 us). The second block halves the
# texts that reach the model (data/safety.jsonl: 12,312 -> 6,976 of 46,568); the only texts it moves from non-English
# to English are two English slang ones langid called Nigerian Pidgin (others now read "en" where langid named a
# language with too little confidence to flag).
_ENGLISH_WORDS = frozenset(
    {
        "the", "and", "to", "of", "you", "is", "it", "that", "for", "in", "my", "how", "what", "can", "with", "this",
        "are", "be", "your", "me", "do", "have", "not", "on", "if", "we", "they", "was", "will", "would", "should",
        "could", "there", "their", "about", "which", "when", "where", "who", "why",
        "at", "by", "from", "or", "but", "all", "so", "just", "like", "dont", "don't", "can't", "i'm", "it's",
        "that's", "been", "has", "had", "were", "them", "these", "those", "some", "any", "than", "then", "into", "out",
        "up", "get", "make", "give", "write", "tell", "people", "does", "did", "am", "our", "us", "him", "his", "she",
        "one", "want", "know", "think", "because", "very", "also", "only", "even", "more", "most", "other", "way",
        "its", "he", "her", "they're", "you're", "isn't", "doesn't", "didn't", "wouldn't", "need", "help", "good",
        "best", "many", "much", "every", "over", "after", "before", "being", "something", "anything",
    }
)  # fmt: skip
# Not in the list: "i" and "an" (Zulu and Gaelic prompts in the dev data passed as English with them), "a", "no".
_WORDS = re.compile(r"[A-Za-z']+")


def detect_language(text: str) -> Language:
    """The language of `text` (see the module docstring for the rule)."""
    head = text[:MAX_CHARS]
    if head.isascii():
        words = _WORDS.findall(head.lower())
        if len(words) >= 4 and sum(w in _ENGLISH_WORDS for w in words) >= 0.2 * len(words):
            return ENGLISH
    letters = [ch for ch in head if ch.isalpha()]
    non_latin = sum(ord(ch) > _LATIN_END and not 0x1E00 <= ord(ch) <= 0x1EFF for ch in letters)
    # a few Chinese or Japanese characters are a sentence; a few Latin letters are not enough to tell
    if non_latin < 2 and len(letters) < MIN_LETTERS:
        return UNDETERMINED
    code, confidence = _identifier().classify(head)
    confidence = float(confidence)
    if non_latin >= 0.5 * len(letters):
        return Language(str(code) if code != "en" else None, False, confidence)
    if code == "zxx":
        return UNDETERMINED
    if code != "en" and confidence >= MIN_CONFIDENCE:
        return Language(str(code), False, confidence)
    return ENGLISH if code == "en" else Language(str(code), True, confidence)
