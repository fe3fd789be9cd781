"""The guard's configuration: one flat, file-backed set of knobs (data/scoring.json), read by each part of the guard.

Sections, each read by one part: built-in scoring (index.scoring), custom topics (index.topics), the decision
(index.decision), units of a text (index.units), the vector store (index.store), embedding batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from index.calibration import Platt
from index.errors import InvalidInputError
from index.store import AnnParams, FaissBackend


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Scoring knobs. Defaults were chosen on out-of-source dev data (docs/results.md says how)."""

    # --- built-in scoring (index.scoring) and the unsafe threshold (index.decision)
    k: int = 16
    knn_temperature: float = 0.05
    centroid_temperature: float = 0.05
    weight_knn: float = 0.4
    weight_centroid: float = 0.2
    weight_head: float = 0.4
    threshold: float = 0.5
    category_thresholds: dict[str, float] = field(default_factory=dict)
    """Per built-in category overrides of `threshold`, keyed by category id (a label's own threshold wins)."""
    platt: Platt = field(default_factory=Platt)
    # --- custom topics (index.topics)
    topic_top_m: int = 3
    topic_knn_weight: float = 0.5
    # topic score = (1 - w) * similarity + w * learned head (index.topics.head); threshold 55 % of the way from the
    # background's (1 - target_fmr) quantile to the median leave-one-out score (topic_positive_quantile None).
    # Chosen on the valid splits of benchmarks.topics.bench (docs/topics.md). topic_interpolation None selects the
    # older rules (background quantile, lift by topic_positive_quantile - topic_positive_margin).
    topic_head_weight: float = 0.5
    topic_head_l2: float = 0.01
    topic_interpolation: float | None = 0.55
    topic_target_fmr: float = 0.01
    topic_threshold_floor: float = 0.05
    topic_positive_quantile: float | None = None
    topic_positive_margin: float = 0.0
    # --- the verdict (index.decision)
    evidence: int = 3
    # --- units of a text: windows, sentences, deobfuscated variants, language (index.units)
    window_overlap: float = 0.25
    window_tokens: int = 128
    sentence_threshold: float | None = 0.75
    """Each sentence (or line) of a multi-sentence text is also scored on its own, so one unsafe sentence is not
    diluted by the benign text around it. Every sentence is first read in context, pooled from its window's model
    run (`Encoder.encode_spans`, no extra run); one whose unsafe score reaches this bar is encoded alone and joins
    the text's windows as a unit of its own (for custom topics too, see `sentence_topics`). The
    bar is above `threshold` because a benign text's fragment read alone looks worse than the text. Chosen on dev
    with benchmarks.evaluation.buried (docs/reliability.md). None: windows only."""
    sentence_min_tokens: int = 64
    """Sentence units only for texts of more tokens than this: in a shorter text one sentence is a large share of
    the window's mean, so it is not diluted, and a short prompt pays no extra model run."""
    sentence_topics: bool = True
    """Sentence units also decide custom topics: a sentence whose in-context score comes within
    `sentence_topic_margin` of a topic's threshold is a suspect too, and read alone it can match the topic
    (thresholds are calibrated on short examples, which a sentence resembles more than a long window does). False:
    topics are scored on windows only."""
    sentence_topic_margin: float = 0.0
    """How far below a topic's threshold a sentence read in context may score and still be read alone: context
    dilutes a sentence, so its in-context score is lower than its score alone."""
    sentence_max_suspects: int | None = 8
    """At most this many suspect sentences per text are encoded alone, those with the highest in-context scores, so
    a long text full of unsafe sentences costs a bounded number of extra runs (None: no cap). The suspects left out
    scored lower in context than every one that was read, and the text's worst unit decides its verdict."""
    deobfuscate: bool = True
    """A text with spaced letters, leetspeak or base64 / hex / URL / ROT13 / reversed spans is also scored in its
    deobfuscated form (index.deobfuscate), as extra windows of the text: the worst unit decides, so a plain text
    keeps its verdict and pays only the scans (issue 24, docs/reliability.md). False: the normalised text only."""
    deobfuscate_max_windows: int = 4
    """At most this many windows of a text's deobfuscated variant are scored (its first ones)."""
    detect_language: bool = True
    """Verdicts name the text's language and warn `non_english` (index.language): the encoder is English-only."""
    # --- embedding batches and the linear head's fit (index.scoring.head)
    batch_size: int = 32
    head_epochs: int = 300
    head_l2: float = 1e-3
    # --- the vector store (index.store)
    ann_threshold: int | None = None
    """Above this many exemplars the store switches from exact search to IVF (None: always exact)."""
    ann_nprobe: int = 32
    """IVF lists searched per query, read at search time: recall against speed (docs/performance.md)."""
    ann_nlist: int | None = None
    """IVF lists; None: ~2·sqrt(n), clamped to [16, 4096]."""

    def store_backend(self, fits: object | None = None) -> FaissBackend:
        """The FAISS backend these knobs describe (a guard may be given another `StoreBackend`); `fits`: where it
        keeps IVF centroids by their training input (`index.fits.FitCache`)."""
        return FaissBackend(self.ann_threshold, AnnParams(nlist=self.ann_nlist), fits)


def load_guard_config(path: Path | None = None) -> GuardConfig:
    """GuardConfig from a JSON file of field overrides (the project's is data/scoring.json, written by
    `python -m benchmarks.evaluation.evaluate`); None: the library defaults.

    Unknown keys starting with `_` are notes and ignored; any other unknown key is an error.
    """
    if path is None:
        return GuardConfig()
    if not path.exists():
        raise InvalidInputError(f"scoring config {path} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        fields = {k: v for k, v in raw.items() if not k.startswith("_")}
        if "platt" in fields:
            fields["platt"] = Platt(**fields["platt"])
        return GuardConfig(**fields)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"scoring config {path} is invalid: {exc}") from exc
