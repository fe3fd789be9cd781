"""Planning a classify call: the units a text is scored as (windows, sentences read in context) and their cost.

A text becomes one or more overlapping windows (each one model run); in a long text every sentence is also pooled
from its window's run, and the suspects among them are later encoded alone (see `GuardConfig.sentence_threshold`).
A plan is pure data, made from the encoder's tokenizer and the guard's configuration, so it can be made before
any model work, priced (`ClassifyPlan.cost`), encoded in slices by a scheduler and decided in one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from index.deobfuscate import deobfuscation
from index.encoding.encoder import Encoder, window_char_spans, window_geometry
from index.errors import CostLimitError, InvalidInputError
from index.language import detect_language
from index.lexicon import default_lexicon
from index.text import normalize_text, sentence_spans
from index.types import Verdict

if TYPE_CHECKING:  # the guard's configuration type; no import cycle at run time
    from index.config import GuardConfig

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ClassifyPlan:
    """The windows of a batch of texts and the sentences to read from each window's run.

    `windows[i]` belongs to text `owners[i]`; `units[i]` are the spans (relative to that window) of the sentences
    pooled from its run; `unit_texts` are those sentences' texts, in the same order as the flattened `units`.
    The last `variant_windows` windows are deobfuscated variants (index.deobfuscate) of their owners: extra units
    that count in the cost and the verdict but not in a verdict's `windows`. `decoded` (per text, empty when none
    is): its variants were decoded from base64 / hex / URL / ROT13 / reversed text and cover all it says, so they
    decide its verdict instead of its own windows (`index.deobfuscate.Deobfuscation`). `languages` and `warnings`
    (per text) go into the verdicts as they are (`annotate`).
    """

    n_texts: int
    windows: list[str]
    owners: list[int]
    units: list[list[Span]]
    unit_texts: list[str]
    max_suspects: int
    variant_windows: int = 0
    languages: list[str | None] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    decoded: frozenset[int] = frozenset()

    def is_variant(self) -> NDArray[np.bool_]:
        """Per window: whether it is a deobfuscated variant rather than one of its text's own windows."""
        return np.arange(len(self.windows)) >= len(self.windows) - self.variant_windows

    def annotate(self, verdicts: Sequence[Verdict]) -> list[Verdict]:
        """The verdicts (one per text, in order) with each text's language and warnings."""
        if not self.languages:
            return list(verdicts)
        # built directly: dataclasses.replace walks the fields on every call, several times a constructor's cost
        return [
            Verdict(
                flagged=v.flagged,
                category=v.category,
                score=v.score,
                categories=v.categories,
                evidence=v.evidence,
                action=v.action,
                threshold=v.threshold,
                windows=v.windows,
                language=lang,
                warnings=notes,
            )
            for v, lang, notes in zip(verdicts, self.languages, self.warnings, strict=True)
        ]

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

    def unit_owners(self) -> NDArray[np.int64]:
        """Per sentence unit (in `unit_texts` order), the text it belongs to."""
        return np.repeat(np.asarray(self.owners, dtype=np.int64), [len(u) for u in self.units])


PLAN_CHUNK_CHARS = 50_000  # texts are tokenised in groups of about this many characters (see `plan_units`)


def plan_units(
    encoder: Encoder, config: GuardConfig, texts: Sequence[str], max_cost: int | None = None
) -> ClassifyPlan:
    """The windows of the normalised texts, each window's owner text, and per window the spans (relative to it) and
    texts of the sentences read from its run: each sentence once, in the first window that holds it whole.

    `max_cost`: stop as soon as the texts planned so far cost more model runs than this (`ClassifyPlan.cost`), so
    pricing a huge request tokenises little more than the budget's worth of text.

    Raises:
        InvalidInputError: a text is empty after normalisation.
        CostLimitError: the plan would cost more than `max_cost`.
    """
    windows: list[str] = []
    owners: list[int] = []
    units: list[list[Span]] = []
    unit_texts: list[str] = []
    cap = config.sentence_max_suspects
    cost = 0
    for group in _chunks(texts, PLAN_CHUNK_CHARS if max_cost is not None else None):
        cleaned = {n: normalize_text(texts[n]) for n in group}
        for n, clean in cleaned.items():
            if not clean:
                raise InvalidInputError(f"text #{n} is empty after normalisation")
        # one tokenizer call per group: many short prompts tokenise in about half the time of one call each
        for n, tokens in zip(group, encoder.token_spans([cleaned[n] for n in group]), strict=True):
            text, clean = texts[n], cleaned[n]
            long_enough = config.sentence_threshold is not None and len(tokens) > config.sentence_min_tokens
            sentences = sentence_spans(text, clean) if long_enough else []
            todo = sentences if len(sentences) > 1 else []
            first_unit = len(unit_texts)
            spans = window_char_spans(encoder, clean, config.window_overlap, config.window_tokens, tokens)
            for a, b in spans:
                windows.append(clean[a:b])
                owners.append(n)
                inside = [(s, e) for s, e in todo if s >= a and e <= b]
                todo = [(s, e) for s, e in todo if not (s >= a and e <= b)]
                kept = [(s, e) for s, e in inside if (s, e) != (a, b)]  # a sentence that is the window adds nothing
                units.append([(s - a, e - a) for s, e in kept])
                unit_texts.extend(clean[s:e] for s, e in kept)
            new_units = len(unit_texts) - first_unit
            cost += len(spans) + (new_units if cap is None else min(new_units, cap))
            if max_cost is not None and cost > max_cost:
                raise CostLimitError(cost, max_cost, n + 1)
    bound = len(unit_texts) if cap is None else cap
    variants = plan_variants(encoder, config, texts)
    cost += len(variants.windows)
    if max_cost is not None and cost > max_cost:
        raise CostLimitError(cost, max_cost, len(texts))
    windows.extend(variants.windows)
    owners.extend(variants.owners)
    units.extend([] for _ in variants.windows)
    return ClassifyPlan(
        len(texts),
        windows,
        owners,
        units,
        unit_texts,
        bound,
        len(variants.windows),
        *variants.notes(len(texts)),
        decoded=variants.decoded,
    )


@dataclass(frozen=True, slots=True)
class Variants:
    """Windows of the deobfuscated variants of a batch of texts, and each text's language."""

    windows: list[str]
    owners: list[int]
    languages: list[str | None]
    non_english: list[bool]
    decoded: frozenset[int] = frozenset()

    def notes(self, n_texts: int) -> tuple[list[str | None], list[list[str]]]:
        """Per text: its language and its warnings ("non_english", "deobfuscated")."""
        varied = set(self.owners)
        languages = self.languages or [None] * n_texts
        non_english = self.non_english or [False] * n_texts
        warnings = [
            [w for w, on in (("non_english", non_english[n]), ("deobfuscated", n in varied)) if on]
            for n in range(n_texts)
        ]
        return languages, warnings


def plan_variants(encoder: Encoder, config: GuardConfig, texts: Sequence[str]) -> Variants:
    """The windows of each text's deobfuscated units (`GuardConfig.deobfuscate`: the variant, then decoded payloads
    alone; at most `deobfuscate_max_windows` per text), owned by the text, and each text's language (read from the
    variant when there is one: leetspeak or base64 reads as no language). A plain text costs only the scans.
    A decoded text (`Deobfuscation.decoded`) whose units fit in those windows is `decoded`: they decide for it."""
    results = [(n, deobfuscation(text)) for n, text in enumerate(texts)] if config.deobfuscate else []
    done = [(n, r) for n, r in results if r is not None]
    found = [(n, unit) for n, r in done for unit in r.units]
    decoded = {n for n, r in done if r.decoded}
    windows: list[str] = []
    owners: list[int] = []
    tokenised = encoder.token_spans([unit for _, unit in found]) if found else []
    for (n, unit), tokens in zip(found, tokenised, strict=True):
        room = config.deobfuscate_max_windows - owners.count(n)
        spans = window_char_spans(encoder, unit, config.window_overlap, config.window_tokens, tokens)
        if len(spans) > room:
            decoded.discard(n)  # cut short: its own windows still decide beside what was read
        for a, b in spans[: max(0, room)]:
            windows.append(unit[a:b])
            owners.append(n)
    if not config.detect_language:
        return Variants(windows, owners, [], [], frozenset(decoded))
    read: dict[int, str] = {}
    for n, unit in found:
        read.setdefault(n, unit)
    detected = [detect_language(read.get(n, text)) for n, text in enumerate(texts)]
    return Variants(windows, owners, [d.code for d in detected], [not d.english for d in detected], frozenset(decoded))


def window_bound(encoder: Encoder, config: GuardConfig, texts: Sequence[str]) -> int:
    """An upper bound on the windows (model runs) of `texts` from their lengths alone, without tokenising: a token
    covers at least one character, so a text of n characters has at most n tokens. A short prompt's bound is 1.
    Sentence suspects and deobfuscated variants are left out (a few short runs per text, when they apply)."""
    window, stride = window_geometry(encoder, config.window_overlap, config.window_tokens)
    return sum(1 if len(text) <= window else 1 + -(-(len(text) - window) // stride) for text in texts)


def warm_up() -> None:
    """Load what planning loads on first use (the language identifier, ~1.2 s; the encoder's vocabulary for
    deobfuscation, ~0.4 s), so that no request waits for it: call once at start-up, off the event loop."""
    detect_language("Bonjour à tous, ceci est un texte qui n'est pas écrit en anglais.")
    default_lexicon()


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


def _chunks(texts: Sequence[str], max_chars: int | None) -> list[list[int]]:
    """Indices of `texts` in order, grouped so that a group holds about `max_chars` characters (one group: None)."""
    if max_chars is None:
        return [list(range(len(texts)))]
    groups: list[list[int]] = [[]]
    size = 0
    for n, text in enumerate(texts):
        if groups[-1] and size + len(text) > max_chars:
            groups.append([])
            size = 0
        groups[-1].append(n)
        size += len(text)
    return groups
