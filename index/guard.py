"""The guard: the public front over its parts (labels, vector store, built-in scorers, topics, decision), with one
lock so that classify and edits can run from many threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from index.building import build_vectors
from index.config import GuardConfig
from index.decision import Decider
from index.encoding import EmbeddingCache, Encoder, embed_cached
from index.errors import InvalidInputError, UnknownLabelError
from index.exemplars import Change, ExemplarSet
from index.labels import LabelSet
from index.scoring import Matrix, Neighbours, Scores, builtin_scorers
from index.scoring.fusion import distributions, find_neighbours, fused_scores
from index.scoring.head import LinearHead
from index.store import StoreBackend, VectorStore
from index.topics import TopicSet
from index.types import SAFE, Exemplar, Label, Vectors, Verdict
from index.units import ClassifyPlan, plan_units, window_bound

Progress = Callable[[int, int], None]
SAFE_SAMPLE = 5000  # at most this many built-in `safe` exemplars in a topic's calibration background


class Guard:
    """Classifies texts against built-in safety categories and custom topics.

    Built-in categories (and `safe`) are scored as a distribution: kNN vote + centroid softmax + linear head, fused
    (index.scoring); the unsafe score is 1 - p(safe) over enabled categories, Platt-calibrated. Custom topics are
    scored open-set (index.topics) against per-topic calibrated thresholds; index.decision turns scores into
    verdicts. Every method is safe to call from several threads.
    """

    def __init__(
        self,
        encoder: Encoder,
        labels: Iterable[Label],
        config: GuardConfig | None = None,
        background: Vectors | None = None,
        store: StoreBackend | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        """`store`: how to make this guard's vector store (default: FAISS, as `config` describes); `cache`: where
        `embed` takes and keeps exemplar vectors (`embedding_cache`)."""
        config = config or GuardConfig()
        self.encoder = encoder
        # exemplar and topic-example vectors by (model, text), shared with other guards; never classify traffic
        self.embedding_cache = cache
        self._lock = threading.RLock()
        self._labels = LabelSet(labels)
        self.store_backend = store or config.store_backend(fits=cache)
        self._book = ExemplarSet(self.store_backend.empty(encoder.dim, encoder.model_id), self._labels)
        n_builtin = len(self._labels.builtin)
        self._knn, self._centroid, self._head = builtin_scorers(config, n_labels=n_builtin, dim=encoder.dim)
        self._scorers = (self._knn, self._centroid, self._head)
        if background is None:
            background = np.zeros((0, encoder.dim), dtype=np.float32)
        self._topics = TopicSet(config, encoder.dim, background)
        # the safe exemplars a topic is calibrated against: read from the store once, kept until safe ones change
        self._safe_sample: Vectors | None = None
        self._decider = Decider(config, self._labels, self._book.by_id)
        self._config = config

    @property
    def config(self) -> GuardConfig:
        return self._config

    @config.setter
    def config(self, config: GuardConfig) -> None:
        """Another configuration for scoring and deciding (what was fitted at build time stays: the head, the
        topic heads, the store's kind)."""
        with self._lock:
            self._config = config
            for scorer in self._scorers:
                scorer.configure(config)
            self._topics.config = config
            self._decider.config = config

    @property
    def head(self) -> LinearHead | None:
        """The linear head over built-in labels (None when not fitted or weighted 0)."""
        return self._head.head

    @head.setter
    def head(self, head: LinearHead | None) -> None:
        self._head.head = head

    @property
    def background(self) -> Vectors:
        """Vectors of the shipped benign text that custom topics are calibrated against."""
        return self._topics.background

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
        store: StoreBackend | None = None,
        cache: EmbeddingCache | None = None,
    ) -> Guard:
        """Encode every exemplar, index it, fit the linear head on the built-in ones, calibrate topics.

        `reuse`: a guard of the same model whose vectors of unchanged exemplars are taken; `cache`: the embedding
        cache the other texts' vectors come from and go to, kept by the new guard for `embed` (both:
        `index.building.build_vectors`).
        """
        labels = list(labels)
        probe = Guard(encoder, labels, config, store=store, cache=cache)
        vectors, background = build_vectors(
            encoder, exemplars, background_texts, probe.config.batch_size, reuse, cache, progress
        )
        return cls.from_vectors(
            encoder, probe.labels.values(), exemplars, vectors, config, background, store=store, cache=cache
        )

    @classmethod
    def from_vectors(
        cls,
        encoder: Encoder,
        labels: Iterable[Label],
        exemplars: Sequence[Exemplar],
        vectors: Vectors,
        config: GuardConfig | None = None,
        background: Vectors | None = None,
        store: StoreBackend | None = None,
        cache: EmbeddingCache | None = None,
    ) -> Guard:
        """Like `build`, with exemplar (and background) vectors already computed by `encoder`."""
        guard = Guard(encoder, labels, config, background=background, store=store, cache=cache)
        guard.add_exemplars(exemplars, vectors, calibrate=False)
        guard.fit_head()
        for name, label in guard.labels.items():
            if label.kind == "custom" and label.threshold is None and name in guard._topics:
                guard.calibrate_topic(name)
        return guard

    def fit_head(self) -> None:
        """(Re)fit the linear head on the built-in exemplars (allow-examples count as `safe`)."""
        with self._lock:
            if self._head.weight == 0:
                self._head.head = None
                return
            columns, vectors = self._book.builtin()
            # the embedding cache also keeps fitted heads by their inputs: an unchanged set is not refitted
            self._head.fit(vectors, columns, self.embedding_cache)

    # ----------------------------------------------------------------- reading
    @property
    def labels(self) -> dict[str, Label]:
        with self._lock:
            return self._labels.as_dict()

    @property
    def builtin_labels(self) -> list[str]:
        return list(self._labels.builtin)

    @property
    def exemplars(self) -> dict[int, Exemplar]:
        with self._lock:
            return dict(self._book.by_id)

    @property
    def lock(self) -> threading.RLock:
        """The guard's lock: hold it to read several parts as one state (e.g. to save the guard)."""
        return self._lock

    @property
    def store(self) -> VectorStore:
        """The vector store (hold `lock` to read it as one state: edits change it)."""
        return self._book.store

    def __len__(self) -> int:
        return len(self._book.store)

    def checksum(self) -> str:
        with self._lock:
            return self._book.store.checksum()

    def vectors(self, ids: Sequence[int]) -> Vectors:
        with self._lock:
            return self._book.store.reconstruct(ids)

    # ----------------------------------------------------------------- editing
    def upsert_label(self, label: Label) -> Label:
        """Add or change a label; a custom topic with threshold None gets a calibrated one (returned)."""
        with self._lock:
            self._labels.put(label)
            if label.kind == "custom" and label.threshold is None and label.name in self._topics:
                self.calibrate_topic(label.name)
            return self._labels[label.name]

    def remove_label(self, name: str) -> list[int]:
        """Remove a custom topic and its exemplars; returns the removed exemplar ids."""
        with self._lock:
            label = self._labels.require(name)
            if label.kind != "custom":
                raise UnknownLabelError(f"{name!r} is built-in and cannot be removed; disable it instead")
            ids = [e.id for e in self._book.of_label(name)]
            self.remove_exemplars(ids)
            self._labels.remove(name)
            return ids

    def add_exemplars(
        self, exemplars: Sequence[Exemplar], vectors: Vectors | None = None, calibrate: bool = True
    ) -> None:
        """Index exemplars (encoding them unless `vectors` are given); labels must exist. All or nothing."""
        if vectors is None:
            vectors = self.embed([e.text for e in exemplars])
        with self._lock:
            self._apply(self._book.add(exemplars, vectors), calibrate=calibrate)

    def adopt_store(self, store: VectorStore, exemplars: Sequence[Exemplar]) -> None:
        """Make a loaded store (holding exactly `exemplars`' ids) this empty guard's index, without re-adding its
        vectors: re-adding would re-train an IVF index (2.3 s of k-means for the 24k shipped exemplars at start-up).
        Centroids and topics are derived as `add_exemplars` derives them."""
        with self._lock:
            self._apply(self._book.adopt(store, exemplars), calibrate=False)

    def remove_exemplars(self, ids: Iterable[int]) -> None:
        """Remove exemplars by id (unknown ids raise UnknownExemplarError, nothing changes)."""
        with self._lock:
            self._apply(self._book.remove(ids), removed=True)

    def _apply(self, change: Change, calibrate: bool = False, removed: bool = False) -> None:
        """Bring the parts derived from exemplars up to date after an edit: centroid sums, topics, thresholds."""
        if change.columns:
            (self._centroid.remove if removed else self._centroid.add)(change.columns, change.vectors)
            if self._labels.column[SAFE] in change.columns:
                self._safe_sample = None  # the calibration background's safe exemplars may have changed
        for name in change.topics:
            members = self._book.of_label(name)
            pos = [e.id for e in members if e.role == "positive"]
            allow = [e.id for e in members if e.role == "allow"]
            store = self._book.store
            self._topics.update(name, pos, store.reconstruct(pos), allow, store.reconstruct(allow))
        if change.topics:
            self._topics.restack()
        if calibrate:
            for name in change.topics:
                if self._labels[name].threshold is None:
                    self.calibrate_topic(name)

    def calibrate_topic(self, name: str, target_fmr: float | None = None) -> float:
        """Set a custom topic's threshold from its own examples against background text; returns it.

        Positives are scored leave-one-out; the background is the shipped benign corpus plus the built-in exemplars'
        safe class and the other topics' examples. See docs/topics.md for the assumptions.
        """
        with self._lock:
            label = self._labels.require(name)
            if label.kind != "custom" or name not in self._topics:
                raise UnknownLabelError(f"{name!r} is not a custom topic with examples")
            if self._safe_sample is None:
                self._safe_sample = self._book.safe_vectors(SAFE_SAMPLE)
            threshold = self._topics.calibrate(name, self._safe_sample, target_fmr)
            self._labels.put(replace(label, threshold=round(threshold, 6)))
            return self._labels[name].threshold  # type: ignore[return-value]

    def topic_threshold(self, name: str) -> float:
        """The threshold a custom topic's score is compared with: its own (calibrated or set), else the floor."""
        with self._lock:
            return self._decider.topic_threshold(self._labels.require(name))

    # ----------------------------------------------------------------- classifying
    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> Vectors:
        """Vectors of texts as exemplars are indexed (`index.encoding.embed_texts`), through `embedding_cache` when
        the guard has one: for exemplars and topic examples only (classify never calls it)."""
        return embed_cached(self.encoder, texts, self.config.batch_size, self.embedding_cache, progress).vectors

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
            return self._decider.verdicts(plan, self._score(vectors), suspects)

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
        """The sentences (indices into `plan.unit_texts`) to encode alone (`index.decision.Decider.suspects`)."""
        if unit_scores is None or not self.reads_sentences(plan):
            return np.zeros(0, dtype=np.intp)
        with self._lock:
            return self._decider.suspects(plan, in_context, unit_scores)

    def verdicts(self, plan: ClassifyPlan, scores: Scores, suspects: NDArray[np.intp]) -> list[Verdict]:
        """One verdict per text from the scores of all the plan's windows followed by its suspects read alone."""
        with self._lock:
            return self._decider.verdicts(plan, scores, suspects)

    def score_vectors(self, vectors: Vectors) -> list[Verdict]:
        """Verdicts for pre-computed query vectors (one per text, no windowing)."""
        with self._lock:
            scores = self._score(vectors)
            return [self._decider.verdict(scores, np.asarray([n])) for n in range(vectors.shape[0])]

    def builtin_distributions(self, vectors: Vectors) -> dict[str, Matrix]:
        """Each built-in scorer's distribution over built-in labels, by name (for evaluation and ablations)."""
        with self._lock:
            return distributions(self._scorers, vectors, self._neighbours(vectors))

    def _neighbours(self, vectors: Vectors) -> Neighbours:
        cfg = self.config
        return find_neighbours(
            self._book.store, vectors, cfg.k, self._topics.example_count(), self._book.builtin_of, cfg.ann_nprobe
        )

    def _score(self, vectors: Vectors) -> Scores:
        neighbours = self._neighbours(vectors)
        unsafe, fused = fused_scores(
            self._scorers, vectors, neighbours, self._labels.unsafe_columns(), self.config.platt
        )
        names, matrix = self._topics.scores(vectors)
        topics = {name: matrix[:, i] for i, name in enumerate(names) if self._labels[name].enabled}
        return Scores(unsafe, fused, topics, neighbours.sims, neighbours.ids)
