"""The guard: exemplars + labels + vector store + scorers → verdicts. Thread-safe for concurrent classify and edits."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from index.calibration import Platt, topic_threshold
from index.encoder import Encoder
from index.errors import InvalidInputError, UnknownLabelError
from index.head import LinearHead, fit_linear_head
from index.scoring import Matrix, TopicBank, fuse, knn_distribution, softmax, topic_score_matrix, topic_scores
from index.store import AnnParams, VectorStore
from index.text import normalize_text
from index.topic_head import GramStats, TopicHead, fit_topic_head
from index.types import SAFE, Evidence, Exemplar, Label, Vectors, Verdict
from index.units import ClassifyPlan, plan_units, top_per_owner, window_bound

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Scoring knobs. Defaults were chosen on out-of-source dev data (docs/results.md says how)."""

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
    topic_top_m: int = 3
    topic_knn_weight: float = 0.5
    # topic score = (1 - w) * similarity + w * learned head (index.topic_head); threshold 55 % of the way from the
    # background's (1 - target_fmr) quantile to the median leave-one-out score (topic_positive_quantile None).
    # Chosen on the valid splits of scripts/bench_topics.py (docs/topics.md). topic_interpolation None selects the
    # older rules (background quantile, lift by topic_positive_quantile - topic_positive_margin).
    topic_head_weight: float = 0.5
    topic_head_l2: float = 0.01
    topic_interpolation: float | None = 0.55
    topic_target_fmr: float = 0.01
    topic_threshold_floor: float = 0.05
    topic_positive_quantile: float | None = None
    topic_positive_margin: float = 0.0
    evidence: int = 3
    window_overlap: float = 0.25
    window_tokens: int = 128
    sentence_threshold: float | None = 0.75
    """Each sentence (or line) of a multi-sentence text is also scored on its own, so one unsafe sentence is not
    diluted by the benign text around it. Every sentence is first read in context, pooled from its window's model
    run (`Encoder.encode_spans`, no extra run); one whose unsafe score reaches this bar is encoded alone and joins
    the text's windows as a unit of its own (for custom topics too, see `sentence_topics`). The
    bar is above `threshold` because a benign text's fragment read alone looks worse than the text. Chosen on dev
    with scripts/check_buried.py (docs/reliability.md). None: windows only."""
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
    batch_size: int = 32
    head_epochs: int = 300
    head_l2: float = 1e-3
    ann_threshold: int | None = None
    """Above this many exemplars the store switches from exact search to IVF (None: always exact)."""
    ann_nprobe: int = 32
    """IVF lists searched per query, read at search time: recall against speed (docs/performance.md)."""
    ann_nlist: int | None = None
    """IVF lists; None: ~2·sqrt(n), clamped to [16, 4096]."""


def load_guard_config(path: Path | None = None) -> GuardConfig:
    """GuardConfig from a JSON file of field overrides (default `data/scoring.json`, written by scripts/evaluate.py).

    Unknown keys starting with `_` are notes and ignored; any other unknown key is an error. A missing default file
    means the library defaults.
    """
    default = path is None
    path = Path(__file__).resolve().parent.parent / "data" / "scoring.json" if path is None else path
    if not path.exists():
        if default:
            return GuardConfig()
        raise InvalidInputError(f"scoring config {path} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        fields = {k: v for k, v in raw.items() if not k.startswith("_")}
        if "platt" in fields:
            fields["platt"] = Platt(**fields["platt"])
        return GuardConfig(**fields)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"scoring config {path} is invalid: {exc}") from exc


@dataclass(slots=True)
class _Topic:
    positive_ids: list[int]
    positives: Vectors
    allow_ids: list[int]
    allows: Vectors
    head: TopicHead | None = None
    head_loo: NDArray[np.float32] | None = None  # leave-one-out head outputs of the positives


@dataclass(frozen=True, slots=True)
class Scores:
    """What the guard's scorers make of query vectors, row by row (`Guard.score`)."""

    unsafe: NDArray[np.float64]  # (n,) calibrated unsafe score
    builtin: Matrix  # (n, n_builtin) fused distribution
    topics: dict[str, NDArray[np.float32]]
    neighbour_sims: Matrix
    neighbour_ids: NDArray[np.int64]

    @classmethod
    def concat(cls, parts: Sequence[Scores]) -> Scores:
        """The rows of `parts` in order, as if scored at once (parts must come from one state of one guard)."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.unsafe for p in parts]),
            np.concatenate([p.builtin for p in parts]),
            {name: np.concatenate([p.topics[name] for p in parts]) for name in parts[0].topics},
            np.concatenate([p.neighbour_sims for p in parts]),
            np.concatenate([p.neighbour_ids for p in parts]),
        )


class Guard:
    """Classifies texts against built-in safety categories and custom topics.

    Built-in categories (and `safe`) are scored as a distribution: kNN vote + centroid softmax + linear head, fused;
    the unsafe score is 1 - p(safe) over enabled categories, Platt-calibrated. Custom topics are scored open-set
    (see `index.scoring.topic_scores`) against per-topic calibrated thresholds.
    """

    def __init__(
        self,
        encoder: Encoder,
        labels: Iterable[Label],
        config: GuardConfig | None = None,
        background: Vectors | None = None,
    ) -> None:
        self.encoder = encoder
        self.config = config or GuardConfig()
        self._lock = threading.RLock()
        self._labels: dict[str, Label] = {}
        for label in labels:
            self._labels[label.name] = label
        if SAFE not in self._labels:
            self._labels[SAFE] = Label(SAFE, "safe", action="flag")
        self._builtin = [n for n, lab in self._labels.items() if lab.kind != "custom"]
        self._builtin_index = {n: i for i, n in enumerate(self._builtin)}
        self._exemplars: dict[int, Exemplar] = {}
        self._store = VectorStore(
            encoder.dim,
            encoder.model_id,
            ann_threshold=self.config.ann_threshold,
            ann=AnnParams(nlist=self.config.ann_nlist),
        )
        self._builtin_of: dict[int, int] = {}  # exemplar id -> built-in label column (kNN votes)
        self._sums = np.zeros((len(self._builtin), encoder.dim), dtype=np.float64)
        self._centroids = np.zeros((len(self._builtin), encoder.dim), dtype=np.float32)
        self._topics: dict[str, _Topic] = {}
        self._topic_bank = TopicBank.stack([], [], [], [], 0.0, encoder.dim)
        self._background_stats: GramStats | None = None
        self.head: LinearHead | None = None
        self.background = background if background is not None else np.zeros((0, encoder.dim), dtype=np.float32)

    # ----------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        encoder: Encoder,
        labels: Iterable[Label],
        exemplars: Sequence[Exemplar],
        config: GuardConfig | None = None,
        background_texts: Sequence[str] = (),
        progress: Progress | None = None,
        reuse: Guard | None = None,
    ) -> Guard:
        """Encode every exemplar, index it, fit the linear head on the built-in ones, calibrate topics.

        `reuse`: a guard whose vectors are taken, not recomputed, for the exemplars it holds with the same id and
        text, when it was built with the same encoder (model id) — e.g. a saved index whose scoring configuration is
        out of date: 24k exemplars are re-indexed in seconds instead of re-encoded in minutes. Vectors depend only on
        the encoder and the normalised text, so the result equals a full build.
        """
        probe = Guard(encoder, labels, config)
        vectors = np.empty((len(exemplars), encoder.dim), dtype=np.float32)
        reused: list[int] = []
        if reuse is not None and reuse.encoder.model_id == encoder.model_id:
            known = reuse.exemplars
            reused = [n for n, e in enumerate(exemplars) if (old := known.get(e.id)) is not None and old.text == e.text]
            if reused:
                vectors[reused] = reuse.vectors([exemplars[n].id for n in reused])
        skip = set(reused)
        fresh = [n for n in range(len(exemplars)) if n not in skip]
        embedded = probe.embed([exemplars[n].text for n in fresh] + list(background_texts), progress=progress)
        vectors[fresh] = embedded[: len(fresh)]
        return cls.from_vectors(encoder, probe._labels.values(), exemplars, vectors, config, embedded[len(fresh) :])

    @classmethod
    def from_vectors(
        cls,
        encoder: Encoder,
        labels: Iterable[Label],
        exemplars: Sequence[Exemplar],
        vectors: Vectors,
        config: GuardConfig | None = None,
        background: Vectors | None = None,
    ) -> Guard:
        """Like `build`, with exemplar (and background) vectors already computed by `encoder`."""
        guard = Guard(encoder, labels, config, background=background)
        guard.add_exemplars(exemplars, vectors, calibrate=False)
        guard.fit_head()
        for name, label in guard._labels.items():
            if label.kind == "custom" and label.threshold is None and name in guard._topics:
                guard.calibrate_topic(name)
        return guard

    def fit_head(self) -> None:
        """(Re)fit the linear head on the built-in exemplars (allow-examples count as `safe`)."""
        with self._lock:
            ids = [i for i, e in self._exemplars.items() if e.label in self._builtin_index]
            if not ids or self.config.weight_head == 0:
                self.head = None
                return
            vectors = self._store.reconstruct(ids)
            idx = np.asarray([self._builtin_label_idx(self._exemplars[i]) for i in ids], dtype=np.int64)
            self.head = fit_linear_head(
                vectors, idx, len(self._builtin), l2=self.config.head_l2, epochs=self.config.head_epochs
            )

    # ----------------------------------------------------------------- reading
    @property
    def labels(self) -> dict[str, Label]:
        with self._lock:
            return dict(self._labels)

    @property
    def builtin_labels(self) -> list[str]:
        return list(self._builtin)

    @property
    def exemplars(self) -> dict[int, Exemplar]:
        with self._lock:
            return dict(self._exemplars)

    def __len__(self) -> int:
        return len(self._store)

    def checksum(self) -> str:
        with self._lock:
            return self._store.checksum()

    def vectors(self, ids: Sequence[int]) -> Vectors:
        with self._lock:
            return self._store.reconstruct(ids)

    # ----------------------------------------------------------------- editing
    def upsert_label(self, label: Label) -> Label:
        """Add or change a label; a custom topic with threshold None gets a calibrated one (returned)."""
        with self._lock:
            if label.kind != "custom" and label.name not in self._builtin_index:
                raise UnknownLabelError(
                    f"built-in label {label.name!r} is not part of this index; rebuild the index to add categories"
                )
            self._labels[label.name] = label
            if label.kind == "custom" and label.threshold is None and label.name in self._topics:
                self.calibrate_topic(label.name)
            return self._labels[label.name]

    def remove_label(self, name: str) -> list[int]:
        """Remove a custom topic and its exemplars; returns the removed exemplar ids."""
        with self._lock:
            label = self._require(name)
            if label.kind != "custom":
                raise UnknownLabelError(f"{name!r} is built-in and cannot be removed; disable it instead")
            ids = [i for i, e in self._exemplars.items() if e.label == name]
            self.remove_exemplars(ids)
            del self._labels[name]
            return ids

    def add_exemplars(
        self, exemplars: Sequence[Exemplar], vectors: Vectors | None = None, calibrate: bool = True
    ) -> None:
        """Index exemplars (encoding them unless `vectors` are given); labels must exist. All or nothing."""
        if vectors is None:
            vectors = self.embed([e.text for e in exemplars])
        with self._lock:
            for e in exemplars:
                self._require(e.label)
            self._store.add([e.id for e in exemplars], vectors)
            self._track(exemplars, vectors, calibrate)

    def adopt_store(self, store: VectorStore, exemplars: Sequence[Exemplar]) -> None:
        """Make a loaded store (holding exactly `exemplars`' ids) this empty guard's index, without re-adding its
        vectors: re-adding would re-train an IVF index (2.3 s of k-means for the 24k shipped exemplars at start-up).
        Centroids and topics are derived as `add_exemplars` derives them."""
        with self._lock:
            if len(self._store) or self._exemplars:
                raise InvalidInputError("adopt_store needs an empty guard")
            if store.model_id != self.encoder.model_id or store.dim != self.encoder.dim:
                raise InvalidInputError(f"the store was built with {store.model_id!r}, not {self.encoder.model_id!r}")
            ids, vectors = store.items()
            by_id = {e.id: e for e in exemplars}
            if len(by_id) != len(exemplars) or set(by_id) != set(ids.tolist()):
                raise InvalidInputError("the store's ids and the exemplars differ")
            for e in exemplars:
                self._require(e.label)
            self._store = store
            self._track([by_id[int(i)] for i in ids], vectors, calibrate=False)

    def _track(self, exemplars: Sequence[Exemplar], vectors: Vectors, calibrate: bool) -> None:
        """Bookkeeping for exemplars just indexed: labels, centroid sums, topic matrices, thresholds."""
        with self._lock:
            touched: set[str] = set()
            for e, v in zip(exemplars, vectors, strict=True):
                self._exemplars[e.id] = e
                if e.label in self._builtin_index:
                    self._builtin_of[e.id] = self._builtin_label_idx(e)
                    self._sums[self._builtin_of[e.id]] += v
                else:
                    touched.add(e.label)
            self._refresh(touched, builtin_changed=any(e.label in self._builtin_index for e in exemplars))
            if calibrate:
                for name in touched:
                    if self._labels[name].threshold is None:
                        self.calibrate_topic(name)

    def remove_exemplars(self, ids: Iterable[int]) -> None:
        """Remove exemplars by id (unknown ids raise UnknownExemplarError, nothing changes)."""
        with self._lock:
            id_list = sorted(set(ids))
            vectors = self._store.reconstruct(id_list)
            self._store.remove(id_list)
            touched: set[str] = set()
            builtin_changed = False
            for i, v in zip(id_list, vectors, strict=True):
                e = self._exemplars.pop(i)
                if e.label in self._builtin_index:
                    self._sums[self._builtin_of.pop(i)] -= v
                    builtin_changed = True
                else:
                    touched.add(e.label)
            self._refresh(touched, builtin_changed)

    def calibrate_topic(self, name: str, target_fmr: float | None = None) -> float:
        """Set a custom topic's threshold from its own examples against background text; returns it.

        Positives are scored leave-one-out; the background is the shipped benign corpus plus the built-in exemplars'
        safe class and the other topics' examples. See docs/topics.md for the assumptions.
        """
        with self._lock:
            label = self._require(name)
            topic = self._topics.get(name)
            if label.kind != "custom" or topic is None:
                raise UnknownLabelError(f"{name!r} is not a custom topic with examples")
            cfg = self.config
            loo = self._leave_one_out(topic)
            background = self._background_for(name)
            bg_scores = topic_scores(
                background,
                topic.positives,
                topic.allows,
                cfg.topic_top_m,
                cfg.topic_knn_weight,
                head=None if topic.head is None else topic.head.predict(background),
                head_weight=cfg.topic_head_weight,
            )
            threshold = topic_threshold(
                loo,
                bg_scores,
                cfg.topic_target_fmr if target_fmr is None else target_fmr,
                cfg.topic_threshold_floor,
                cfg.topic_positive_quantile,
                cfg.topic_positive_margin,
                cfg.topic_interpolation,
            )
            self._labels[name] = replace(label, threshold=round(threshold, 6))
            return self._labels[name].threshold  # type: ignore[return-value]

    # ----------------------------------------------------------------- scoring
    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> Vectors:
        """Encode texts in batches (no windowing: exemplars are indexed as written, truncated by the encoder).

        Texts are batched in length order so a batch pads to similar lengths (a mixed batch of one 256-token and
        thirty 20-token texts costs as much as thirty-one 256-token ones).
        """
        out = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        clean = [normalize_text(t) or t for t in texts]
        order = sorted(range(len(clean)), key=lambda i: len(clean[i]))
        step = self.config.batch_size
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            out[rows] = self.encoder.encode([clean[i] for i in rows], batch_size=step)
            if progress is not None:
                progress(min(start + step, len(texts)), len(texts))
        return out

    def classify(self, texts: Sequence[str], encoder: Encoder | None = None) -> list[Verdict]:
        """Verdicts for texts; long texts are scored as overlapping windows, and the sentences of a text over
        `GuardConfig.sentence_min_tokens` also one by one (see `sentence_threshold`); the worst unit decides.

        The same as `decide(plan, *encode_plan(plan))` with `plan = self.plan(texts)`: a scheduler may encode a
        plan's windows in slices, interleaved with other work, and decide once they are all in. `encoder`: another
        instance of this guard's model to run on (see `encode_plan`).
        """
        plan = self.plan(texts)
        vectors, unit_vectors = self.encode_plan(plan, encoder=encoder)
        return self.decide(plan, vectors, unit_vectors, encoder)

    def plan(self, texts: Sequence[str], max_cost: int | None = None) -> ClassifyPlan:
        """The units of `texts` (windows, sentences) and their cost in model runs; no model work (tokenizer only).

        Raises:
            InvalidInputError: a text is empty after normalisation.
        """
        return plan_units(self.encoder, self.config, texts, max_cost)

    def window_bound(self, texts: Sequence[str]) -> int:
        """At most how many windows `texts` have, from their lengths alone (`index.units.window_bound`)."""
        return window_bound(self.encoder, self.config, texts)

    def encode_plan(
        self, plan: ClassifyPlan, start: int = 0, stop: int | None = None, encoder: Encoder | None = None
    ) -> tuple[Vectors, list[Vectors]]:
        """The vectors of windows `start:stop` of `plan` and of the sentences pooled from their runs.

        Needs no lock: the encoder of a guard never changes, and a window's vector does not depend on the other
        windows it is encoded with (int8 runs one text at a time), so slices concatenate to the whole. `encoder`:
        another instance of the same model (e.g. one running on one thread, beside latency-sensitive work).

        Raises:
            InvalidInputError: `encoder` is another model than the guard's.
        """
        stop = len(plan.windows) if stop is None else stop
        return self.same_model(encoder).encode_spans(
            plan.windows[start:stop], plan.units[start:stop], batch_size=self.config.batch_size
        )

    def same_model(self, encoder: Encoder | None) -> Encoder:
        """`encoder` if it runs this guard's model (its vectors are interchangeable), the guard's own if None."""
        if encoder is None:
            return self.encoder
        if encoder.model_id != self.encoder.model_id:
            raise InvalidInputError(f"encoder {encoder.model_id!r} is not this guard's {self.encoder.model_id!r}")
        return encoder

    def decide(
        self, plan: ClassifyPlan, vectors: Vectors, unit_vectors: Sequence[Vectors], encoder: Encoder | None = None
    ) -> list[Verdict]:
        """Verdicts from a plan and all its window (and in-context sentence) vectors, by this guard's encoder.

        The same as `verdicts(plan, score(all), suspects)` with the suspects picked by `suspects` from
        `score(in_context(unit_vectors))` and encoded alone, all under one hold of the lock. A scheduler may run
        those steps apart, scoring a few rows at a time, as long as the guard does not change in between.
        """
        if not plan.windows:
            return []
        with self._lock:
            # stage 1, no extra model run: each sentence read in its context (pooled from its window's run)
            in_context = self.in_context(unit_vectors)
            unit_scores = self._score(in_context) if self.reads_sentences(plan) else None
            suspects = self.suspects(plan, in_context, unit_scores)
            # stage 2, only for suspects: the sentence encoded alone, as exemplars are, so it scores and is
            # categorised like its plain form; it then counts as one more unit of its text. Encoded under the lock
            # so that both stages read one state of the guard (a suspect costs one short run, ~2-3 ms).
            if len(suspects):
                alone = self.same_model(encoder).encode(
                    [plan.unit_texts[i] for i in suspects], batch_size=self.config.batch_size
                )
                vectors = np.concatenate([vectors, alone], axis=0)
            return self.verdicts(plan, self._score(vectors), suspects)

    def in_context(self, unit_vectors: Sequence[Vectors]) -> Vectors:
        """The in-context sentence vectors of a plan's windows (`encode_plan`) as one matrix, in `unit_texts` order."""
        if not len(unit_vectors):
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.concatenate(unit_vectors, axis=0)

    def reads_sentences(self, plan: ClassifyPlan) -> bool:
        """Whether the plan's sentences are scored in context to pick suspects (else `suspects` needs no scores)."""
        return bool(plan.unit_texts) and self.config.sentence_threshold is not None

    def score(self, vectors: Vectors) -> Scores:
        """Scores of query vectors against the guard's current state (rows may be scored in chunks and joined with
        `Scores.concat`, if the guard does not change in between)."""
        with self._lock:
            return self._score(vectors)

    def suspects(self, plan: ClassifyPlan, in_context: Vectors, unit_scores: Scores | None) -> NDArray[np.intp]:
        """The sentences (indices into `plan.unit_texts`) to encode alone: those whose in-context score reaches
        their bar (the built-in one, or the nearest topic's threshold), at most `sentence_max_suspects` per text;
        a unit without tokens is a zero vector and never a suspect."""
        cfg = self.config
        if unit_scores is None or not self.reads_sentences(plan):
            return np.zeros(0, dtype=np.intp)
        assert cfg.sentence_threshold is not None
        with self._lock:
            margin = unit_scores.unsafe - cfg.sentence_threshold
            if cfg.sentence_topics:
                for name, in_topic in unit_scores.topics.items():
                    bar = self._topic_threshold(self._labels[name]) - cfg.sentence_topic_margin
                    margin = np.maximum(margin, in_topic - bar)
        live = np.linalg.norm(in_context, axis=1) > 0.5
        return top_per_owner(
            np.flatnonzero(live & (margin >= 0)), margin, plan.unit_owners(), cfg.sentence_max_suspects
        )

    def verdicts(self, plan: ClassifyPlan, scores: Scores, suspects: NDArray[np.intp]) -> list[Verdict]:
        """One verdict per text from the scores of all the plan's windows followed by its suspects read alone."""
        with self._lock:
            window_owner = np.asarray(plan.owners)
            variant = plan.is_variant()
            suspect_rows = len(plan.windows) + np.arange(len(suspects))
            suspect_owner = plan.unit_owners()[suspects]
            # a deobfuscated variant's windows are extra units, like suspect sentences: they decide, uncounted
            verdicts = [
                self._verdict(
                    scores,
                    np.flatnonzero(~variant & (window_owner == n)),
                    np.concatenate([np.flatnonzero(variant & (window_owner == n)), suspect_rows[suspect_owner == n]]),
                )
                for n in range(plan.n_texts)
            ]
            return plan.annotate(verdicts)

    def score_vectors(self, vectors: Vectors) -> list[Verdict]:
        """Verdicts for pre-computed query vectors (one per text, no windowing)."""
        with self._lock:
            scores = self._score(vectors)
            return [self._verdict(scores, np.asarray([n])) for n in range(vectors.shape[0])]

    def builtin_distributions(self, vectors: Vectors) -> dict[str, Matrix]:
        """The raw kNN, centroid and head distributions over built-in labels (for evaluation and ablations)."""
        with self._lock:
            return self._distributions(vectors)

    # ----------------------------------------------------------------- internals
    def _require(self, name: str) -> Label:
        label = self._labels.get(name)
        if label is None:
            raise UnknownLabelError(f"unknown label {name!r}")
        return label

    def _builtin_label_idx(self, e: Exemplar) -> int:
        return self._builtin_index[SAFE if e.role == "allow" else e.label]

    def _refresh(self, topics: set[str], builtin_changed: bool) -> None:
        if builtin_changed:
            norms = np.linalg.norm(self._sums, axis=1, keepdims=True)
            self._centroids = np.where(norms > 1e-9, self._sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        for name in topics:
            members = [e for e in self._exemplars.values() if e.label == name]
            pos = [e.id for e in members if e.role == "positive"]
            allow = [e.id for e in members if e.role == "allow"]
            if not pos:
                self._topics.pop(name, None)
                continue
            topic = _Topic(pos, self._store.reconstruct(pos), allow, self._store.reconstruct(allow))
            # negatives: the shipped background text and the topic's own allow-examples (not the other topics, so a
            # topic's head does not depend on the order in which topics were added). With fewer background texts
            # than dimensions the fit is underdetermined (mostly the ridge penalty): similarity alone then.
            if self.config.topic_head_weight > 0 and self.background.shape[0] >= self.encoder.dim:
                negatives = self._head_negatives().plus(topic.allows)
                topic.head, topic.head_loo = fit_topic_head(topic.positives, negatives, self.config.topic_head_l2)
            self._topics[name] = topic
        if topics:
            names = list(self._topics)
            self._topic_bank = TopicBank.stack(
                names,
                [self._topics[n].positives for n in names],
                [self._topics[n].allows for n in names],
                [None if (h := self._topics[n].head) is None else (h.weights, h.bias) for n in names],
                self.config.topic_head_weight,
                self.encoder.dim,
            )

    def _head_negatives(self) -> GramStats:
        if self._background_stats is None:
            self._background_stats = GramStats.of(self.background)
        return self._background_stats

    def _leave_one_out(self, topic: _Topic) -> NDArray[np.float32]:
        cfg = self.config
        n = topic.positives.shape[0]
        if n < 2:
            return np.zeros(0, dtype=np.float32)
        out = np.empty(n, dtype=np.float32)
        for i in range(n):
            rest = np.delete(topic.positives, i, axis=0)
            out[i] = topic_scores(
                topic.positives[i : i + 1],
                rest,
                topic.allows,
                cfg.topic_top_m,
                cfg.topic_knn_weight,
                head=None if topic.head_loo is None else topic.head_loo[i : i + 1],
                head_weight=cfg.topic_head_weight,
            )[0]
        return out

    def _background_for(self, name: str) -> Vectors:
        parts = [self.background]
        safe_ids = [i for i, e in self._exemplars.items() if e.label == SAFE][:5000]
        if safe_ids:
            parts.append(self._store.reconstruct(safe_ids))
        parts.extend(t.positives for other, t in self._topics.items() if other != name)
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, self.encoder.dim), dtype=np.float32)

    def _distributions(self, vectors: Vectors) -> dict[str, Matrix]:
        cfg = self.config
        n_builtin = len(self._builtin)
        extra = sum(len(t.positive_ids) + len(t.allow_ids) for t in self._topics.values())
        sims, ids = self._store.search(vectors, cfg.k + min(extra, 4 * cfg.k), nprobe=cfg.ann_nprobe)
        lookup = self._builtin_of.get
        label_idx = np.fromiter((lookup(i, -1) for i in ids.ravel().tolist()), np.int64, ids.size).reshape(ids.shape)
        # keep only the first k built-in neighbours of each row
        keep = np.cumsum(label_idx >= 0, axis=1) <= cfg.k
        label_idx = np.where(keep, label_idx, -1)
        out = {
            "knn": knn_distribution(sims, label_idx, n_builtin, cfg.knn_temperature),
            "centroid": softmax(vectors @ self._centroids.T, cfg.centroid_temperature),
            "_sims": sims,
            "_ids": ids.astype(np.float32),
        }
        if self.head is not None:
            out["head"] = self.head.predict(vectors)
        return out

    def _score(self, vectors: Vectors) -> Scores:
        cfg = self.config
        dists = self._distributions(vectors)
        parts = [(cfg.weight_knn, dists["knn"]), (cfg.weight_centroid, dists["centroid"])]
        if "head" in dists:
            parts.append((cfg.weight_head, dists["head"]))
        fused = fuse(parts)
        enabled = np.asarray([n != SAFE and self._labels[n].enabled for n in self._builtin], dtype=bool)
        raw = fused[:, enabled].sum(axis=1) if enabled.any() else np.zeros(len(vectors))
        matrix = topic_score_matrix(vectors, self._topic_bank, cfg.topic_top_m, cfg.topic_knn_weight)
        topics = {name: matrix[:, i] for i, name in enumerate(self._topic_bank.names) if self._labels[name].enabled}
        return Scores(cfg.platt.apply(raw), fused, topics, dists["_sims"], dists["_ids"].astype(np.int64))

    def _verdict(self, s: Scores, rows: NDArray[np.intp], units: NDArray[np.intp] | None = None) -> Verdict:
        """The verdict of one text from its window rows and its sentence-unit rows (which decide built-ins, and
        custom topics unless `sentence_topics` is off)."""
        cfg = self.config
        builtin_rows = rows if units is None or not len(units) else np.concatenate([rows, units])
        worst = int(builtin_rows[np.argmax(s.unsafe[builtin_rows])])
        unsafe = float(s.unsafe[worst])
        unsafe_mass = max(1e-12, float(sum(s.builtin[worst, i] for i, n in enumerate(self._builtin) if n != SAFE)))
        categories: dict[str, float] = {}
        for i, name in enumerate(self._builtin):
            if name != SAFE and self._labels[name].enabled:
                categories[name] = round(unsafe * float(s.builtin[worst, i]) / unsafe_mass, 6)
        candidates: list[tuple[bool, float, str, float, float]] = []  # (blocks, margin, name, score, threshold)
        if categories:
            top = max(categories, key=categories.__getitem__)
            label = self._labels[top]
            threshold = cfg.category_thresholds.get(top, cfg.threshold) if label.threshold is None else label.threshold
            if unsafe >= threshold:
                candidates.append((label.action == "block", unsafe - threshold, top, unsafe, threshold))
        evidence_row = worst
        topic_rows = builtin_rows if cfg.sentence_topics else rows
        for name, scores in s.topics.items():
            score = float(scores[topic_rows].max())
            categories[name] = round(max(0.0, score), 6)
            threshold = self._topic_threshold(self._labels[name])
            if score >= threshold:
                candidates.append((self._labels[name].action == "block", score - threshold, name, score, threshold))
        if not candidates:
            return Verdict(
                False, None, round(unsafe, 6), categories, self._evidence(s, evidence_row), None, None, len(rows)
            )
        _, _, name, score, threshold = max(candidates)
        if self._labels[name].kind == "custom":
            evidence_row = int(topic_rows[np.argmax(s.topics[name][topic_rows])])
        return Verdict(
            True,
            name,
            round(max(unsafe, score), 6),
            categories,
            self._evidence(s, evidence_row),
            self._labels[name].action,
            round(threshold, 6),
            len(rows),
        )

    def topic_threshold(self, name: str) -> float:
        """The threshold a custom topic's score is compared with: its own (calibrated or set), else the floor."""
        with self._lock:
            return self._topic_threshold(self._require(name))

    def _topic_threshold(self, label: Label) -> float:
        """`topic_threshold` for callers that hold the lock and the label already (classify, per topic and text)."""
        return self.config.topic_threshold_floor if label.threshold is None else label.threshold

    def _evidence(self, s: Scores, row: int) -> list[Evidence]:
        out: list[Evidence] = []
        for sim, i in zip(s.neighbour_sims[row], s.neighbour_ids[row], strict=True):
            e = self._exemplars.get(int(i))
            if e is None or not np.isfinite(sim):
                continue
            out.append(Evidence(e.id, e.text, e.label, round(float(sim), 6), e.role))
            if len(out) >= self.config.evidence:
                break
        return out
