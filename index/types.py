"""Value types shared across the index library.

Scores: every similarity in this package is the cosine of two L2-normalised vectors (inner product), in [-1, 1].
Every *score* reported in a verdict is in [0, 1], higher = more likely to belong to the label (or to be unsafe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Vectors = NDArray[np.float32]
"""A (n, dim) float32 matrix of L2-normalised embeddings."""

Ids = NDArray[np.int64]

SAFE = "safe"
"""The allow class of the built-in taxonomy: exemplars that must not be flagged."""

LabelKind = Literal["builtin", "custom", "safe"]
Role = Literal["positive", "allow"]
Action = Literal["block", "flag"]


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A labelled example text. `role="allow"` marks a hard negative of `label` (it suppresses, never triggers)."""

    id: int
    text: str
    label: str
    role: Role = "positive"


@dataclass(frozen=True, slots=True)
class Label:
    """A category of the safety taxonomy, a custom topic, or `safe`.

    `threshold` is compared with `is None`: None means "use the guard's default for this kind".
    """

    name: str
    kind: LabelKind
    action: Action = "block"
    threshold: float | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Evidence:
    """A nearest exemplar shown to explain a verdict."""

    id: int
    text: str
    label: str
    similarity: float
    role: Role = "positive"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one text.

    `score` is the unsafe score in [0, 1] (monotone, usable for PR curves): the largest of the built-in unsafe
    probability and the matched custom topics' scores. `categories` holds every enabled label's score in [0, 1].
    `windows` counts the text's own windows (not its sentence units or deobfuscated variant). `language` is the
    detected ISO 639-1 code (None: too short or too coded to tell); `warnings` names what the score should be read
    with: "non_english" (the encoder is English-only: route such text elsewhere rather than trust the score) and
    "deobfuscated" (an obfuscated form was undone and scored too, see index.deobfuscate).
    """

    flagged: bool
    category: str | None
    score: float
    categories: dict[str, float]
    evidence: list[Evidence] = field(default_factory=list)
    action: Action | None = None
    threshold: float | None = None
    windows: int = 1
    language: str | None = None
    warnings: list[str] = field(default_factory=list)
