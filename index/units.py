"""Planning a classify call: the units a text is scored as (windows, sentences read in context) and their cost.

A text becomes one or more overlapping windows (each one model run); in a long text every sentence is also pooled
from its window's run, and the suspects among them are later encoded alone (see `GuardConfig.sentence_threshold`).
A plan is pure data, made from the encoder's tokenizer and the guard's configuration, so it can be made before
any model work, priced (`ClassifyPlan.cost`), encoded in slices by a scheduler and decided in one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from index.encoder import Encoder, window_char_spans
from index.errors import InvalidInputError
from index.text import normalize_text, sentence_spans

if TYPE_CHECKING:  # the guard's configuration type; no import cycle at run time
    from index.guard import GuardConfig

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ClassifyPlan:
    """The windows of a batch of texts and the sentences to read from each window's run.

    `windows[i]` belongs to text `owners[i]`; `units[i]` are the spans (relative to that window) of the sentences
    pooled from its run; `unit_texts` are those sentences' texts, in the same order as the flattened `units`.
    """

    n_texts: int
    windows: list[str]
    owners: list[int]
    units: list[list[Span]]
    unit_texts: list[str]
    max_suspects: int

    @property
    def cost(self) -> int:
        """Model runs this plan can take at most: one per window, plus the suspect sentences encoded alone."""
        return len(self.windows) + self.suspect_bound

    @property
    def suspect_bound(self) -> int:
        """At most `max_suspects` sentences per text with sentence units are encoded alone (all when uncapped)."""
        per_owner: dict[int, int] = {}
        for owner, units in zip(self.owners, self.units, strict=True):
            per_owner[owner] = per_owner.get(owner, 0) + len(units)
        return sum(min(n, self.max_suspects) for n in per_owner.values())

    def text_costs(self) -> list[int]:
        """Windows per text, in text order (the share of the model work each text brings)."""
        out = [0] * self.n_texts
        for owner in self.owners:
            out[owner] += 1
        return out


def plan_units(encoder: Encoder, config: GuardConfig, texts: Sequence[str]) -> ClassifyPlan:
    """The windows of the normalised texts, each window's owner text, and per window the spans (relative to it) and
    texts of the sentences read from its run: each sentence once, in the first window that holds it whole.

    Raises:
        InvalidInputError: a text is empty after normalisation.
    """
    windows: list[str] = []
    owners: list[int] = []
    units: list[list[Span]] = []
    unit_texts: list[str] = []
    cleaned = [normalize_text(text) for text in texts]
    for n, clean in enumerate(cleaned):
        if not clean:
            raise InvalidInputError(f"text #{n} is empty after normalisation")
    for n, (text, clean, tokens) in enumerate(zip(texts, cleaned, encoder.token_spans(cleaned), strict=True)):
        long_enough = config.sentence_threshold is not None and len(tokens) > config.sentence_min_tokens
        sentences = sentence_spans(text, clean) if long_enough else []
        todo = sentences if len(sentences) > 1 else []
        for a, b in window_char_spans(encoder, clean, config.window_overlap, config.window_tokens, tokens):
            windows.append(clean[a:b])
            owners.append(n)
            inside = [(s, e) for s, e in todo if s >= a and e <= b]
            todo = [(s, e) for s, e in todo if not (s >= a and e <= b)]
            kept = [(s, e) for s, e in inside if (s, e) != (a, b)]  # a sentence that is the window adds nothing
            units.append([(s - a, e - a) for s, e in kept])
            unit_texts.extend(clean[s:e] for s, e in kept)
    max_suspects = config.sentence_max_suspects
    bound = len(unit_texts) if max_suspects is None else max_suspects
    return ClassifyPlan(len(texts), windows, owners, units, unit_texts, bound)


def top_per_owner(
    candidates: NDArray[np.intp], scores: NDArray[np.float64], owner: NDArray[np.int64], limit: int | None
) -> NDArray[np.intp]:
    """The candidates (indices into `scores`), keeping only the `limit` highest-scoring ones of each owner, in order."""
    if limit is None or len(candidates) <= limit:
        return candidates
    kept: list[int] = []
    taken: dict[int, int] = {}
    for i in candidates[np.argsort(-scores[candidates], kind="stable")]:
        n = taken.get(int(owner[i]), 0)
        if n < limit:
            taken[int(owner[i])] = n + 1
            kept.append(int(i))
    return np.sort(np.asarray(kept, dtype=np.intp))
