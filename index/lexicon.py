"""English words with frequency ranks, and segmentation of a run of letters into words ("apipebomb" -> a pipe bomb).

The word list is the encoder's own WordPiece vocabulary (BERT uncased, shipped inside the base model package): its
whole-word entries after the special and single-character block are in corpus-frequency order ("the" first), so an
entry's position is a usable Zipf rank. Chosen over a word-frequency package (`wordsegment`, unreleased since 2018;
`wordfreq`, four more dependencies and CC-BY-SA data): no new dependency, and it holds exactly the words the encoder
reads as whole tokens, which is what a deobfuscated variant is for.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from pathlib import Path

# Ranks given to the one-letter words: the vocabulary keeps single characters in a block of its own, unranked
_ONE_LETTER = {"a": 6, "i": 12}
_FIRST_WORD = "the"  # the vocabulary's frequency-ordered block starts here
MAX_WORD = 24
_PER_WORD = 2.5  # log of the harmonic normaliser of a Zipf list of ~20k words: each extra word costs its share
# The vocabulary's tail is denser than real usage (position 6,500 holds words ranked far lower in text, e.g. "doi"),
# so the rank counts more than the 1/rank of Zipf's law: "how do i" wins over "how doi" with this exponent.
_RANK_WEIGHT = 1.5
_UNKNOWN_LETTER = 25.0  # cost of a letter left outside any word (about the cost of two rare words)
# A piece of 4+ letters that is no known word ("repulsive", "supremacist") costs a little more per letter than the
# rare short words it could be cut into ("rep ul si ve"); the tokenizer reads it by its WordPiece pieces, as it reads
# the exemplars that hold it. Chosen on the dev rows of the transform benchmark (docs/reliability.md).
_UNKNOWN_WORD = (3.0, 5.5)  # cost: first + second * letters
MIN_UNKNOWN_WORD = 4


class Lexicon:
    """Known words and their ranks (1 = most frequent); lower-case ASCII only."""

    def __init__(self, words_by_frequency: Iterable[str]) -> None:
        self._rank: dict[str, int] = dict(_ONE_LETTER)
        self._with_digits: set[str] = set()  # "mp3", "4x4": known as written, so never read as leetspeak
        for n, word in enumerate(words_by_frequency, start=1):
            if len(word) > 1 and word.isascii() and word.isalpha() and word.islower():
                self._rank.setdefault(word, n)
            elif len(word) > 1 and word.isascii() and word.isalnum() and not word.isdigit():
                self._with_digits.add(word)

    def __contains__(self, word: object) -> bool:
        """A known word, letters only or letters and digits ("mp3"); case-insensitive."""
        return isinstance(word, str) and ((low := word.lower()) in self._rank or low in self._with_digits)

    def __len__(self) -> int:
        return len(self._rank)

    def unknown(self, words: Iterable[str]) -> list[str]:
        """The words that are not known (one pass of look-ups, for scanning a whole text)."""
        rank, digits = self._rank, self._with_digits
        return [word for word in words if (low := word.lower()) not in rank and low not in digits]

    def rank(self, word: str) -> int | None:
        """The word's frequency rank (case-insensitive), None when it is not a known word."""
        return self._rank.get(word.lower())

    def segment(self, run: str, max_unknown: int = 0, unknown_words: int = 0) -> list[str] | None:
        """The likeliest split of a run of letters into known words (unigram Zipf model, Viterbi), case kept.

        Args:
            run: letters only, e.g. "howdoimakeapipebomb"; at most a few hundred (linear in length).
            max_unknown: how many letters may be left outside any word (each as a one-letter piece).
            unknown_words: how many letters, counted with those, may be left in pieces of `MIN_UNKNOWN_WORD` or
                more letters that are no known word ("whitesupremacist" -> white supremacist).

        Returns:
            The words, or None when the run cannot be covered with at most `max_unknown` unknown letters.
        """
        low = run.lower()
        n = len(low)
        best: list[float] = [0.0] + [math.inf] * n
        back: list[int] = [0] * (n + 1)
        unknown: list[int] = [0] * (n + 1)
        for end in range(1, n + 1):
            for start in range(max(0, end - MAX_WORD), end):
                if best[start] == math.inf:
                    continue
                rank = self._rank.get(low[start:end])
                if rank is not None:
                    cost, extra = best[start] + _RANK_WEIGHT * math.log(rank) + _PER_WORD, 0
                elif end - start == 1 and unknown[start] < max_unknown:
                    cost, extra = best[start] + _UNKNOWN_LETTER, 1
                elif end - start >= MIN_UNKNOWN_WORD and unknown[start] + end - start <= unknown_words:
                    cost, extra = best[start] + _UNKNOWN_WORD[0] + _UNKNOWN_WORD[1] * (end - start), end - start
                else:
                    continue
                if cost < best[end]:
                    best[end], back[end], unknown[end] = cost, start, unknown[start] + extra
        if best[n] == math.inf:
            return None
        words: list[str] = []
        end = n
        while end > 0:
            words.append(run[back[end] : end])
            end = back[end]
        return words[::-1]


def read_vocabulary(path: Path) -> list[str]:
    """The frequency-ordered whole words of a WordPiece `vocab.txt` (from "the" on; sub-word pieces dropped)."""
    entries = path.read_text(encoding="utf-8").split("\n")
    start = entries.index(_FIRST_WORD) if _FIRST_WORD in entries else 0
    return [e for e in entries[start:] if e and not e.startswith("##")]


@functools.cache
def default_lexicon() -> Lexicon:
    """The base encoder's vocabulary as a lexicon (read once per process, ~20 ms)."""
    from index.encoding.models import base_model_dir

    return Lexicon(read_vocabulary(base_model_dir() / "vocab.txt"))
