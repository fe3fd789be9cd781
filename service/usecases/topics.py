"""Topic use cases: create, read, update, delete custom topics and their examples; live in the index at once.

Every change goes through one index edit (`service.usecases.edits`): the edit owns the locks, the catch-up, the
commit and the new version, which the result carries (`TopicChange.version`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from index import Exemplar, Guard, Label, Role
from service.db.models import Exemplar as ExemplarRow
from service.db.models import Topic
from service.db.repositories import ExemplarRepository, TopicRepository
from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.serving.runtime import GuardRuntime
from service.usecases.catchup import label_for
from service.usecases.edits import IndexEdits
from service.usecases.evaluation import TopicEvaluationReport, suggest_thresholds, threshold_metrics
from service.usecases.limits import Limits
from service.usecases.topic_views import TopicChange, TopicView, example_view, topic_view


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A new custom topic; `threshold` None: calibrated from the examples."""

    name: str
    examples: Sequence[str]
    allow_examples: Sequence[str] = ()
    description: str = ""
    action: str = "block"
    threshold: float | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class TopicPatch:
    """Fields to change (None: left as they are); `set_threshold` with `threshold` None recalibrates (custom) or
    restores the default (built-in)."""

    description: str | None = None
    action: str | None = None
    enabled: bool | None = None
    threshold: float | None = None
    set_threshold: bool = False


def _to_exemplars(rows: Sequence[ExemplarRow], name: str) -> list[Exemplar]:
    return [Exemplar(r.id, r.text, name, cast(Role, r.role)) for r in rows]


def _dedupe(texts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in texts))


@dataclass(frozen=True, slots=True)
class _Scored:
    scores: list[float]
    threshold: float
    target_fmr: float
    floor: float
    version: int


@dataclass(frozen=True, slots=True)
class _Embedded:
    """Example vectors encoded before an edit took its locks (encoding the examples is most of an add's work)."""

    texts: list[str]
    model_id: str
    vectors: NDArray[np.float32]

    async def current(self, runtime: GuardRuntime) -> NDArray[np.float32]:
        """The vectors, encoded again if a rebuild changed the live model since (a rare race)."""
        if runtime.require().guard.encoder.model_id == self.model_id:
            return self.vectors
        return await runtime.embed(self.texts)


class TopicService:
    def __init__(self, session: Session, edits: IndexEdits, limits: Limits) -> None:
        self.session = session
        self.edits = edits
        self.runtime: GuardRuntime = edits.runtime
        self.limits = limits
        self.topics = TopicRepository(session)
        self.exemplars = ExemplarRepository(session)

    def all_topics(self) -> list[TopicView]:
        counts = self.topics.exemplar_counts()
        return [topic_view(t, counts.get(t.id, 0)) for t in self.topics.find()]

    def find(self, key: str) -> TopicView:
        """A topic by id or name (the CLI's argument)."""
        topic = self.topics.get(int(key)) if key.isdigit() else self.topics.get_by_name(key)
        if topic is None:
            raise NotFoundError(f"no topic {key!r}; list them with `lightguard topics list`", "topic")
        return topic_view(topic, 0)

    def detail(self, topic_id: int) -> TopicView:
        topic = self._get(topic_id)
        examples = self.exemplars.for_topic(topic.id)
        return topic_view(topic, len(examples), examples)

    def _get(self, topic_id: int) -> Topic:
        topic = self.topics.get(topic_id)
        if topic is None:
            raise NotFoundError(f"no topic with id {topic_id}; list them with GET /v1/topics", "topic_id")
        return topic

    async def create(self, spec: TopicSpec) -> TopicChange:
        self.limits.check_examples("examples", spec.examples)
        self.limits.check_examples("allow_examples", spec.allow_examples)
        if len(spec.examples) + len(spec.allow_examples) > self.limits.max_examples:
            raise InvalidRequestError(
                f"{len(spec.examples) + len(spec.allow_examples)} examples in total; the limit is "
                f"{self.limits.max_examples} per request (LIGHTGUARD_MAX_EXAMPLES); add the rest with "
                "POST /v1/topics/{id}/examples",
                "examples",
            )
        positives, allows = _dedupe(spec.examples), _dedupe(spec.allow_examples)
        embedded = await self._embed(positives + allows)  # before the edit: encoding needs no lock
        async with self.edits.open(self.session, "topic_create") as edit:
            if self.topics.get_by_name(spec.name) is not None:
                raise ConflictError(f"a topic named {spec.name!r} exists; pick another name or update it", "name")
            topic = self.topics.add(
                Topic(
                    name=spec.name,
                    title=spec.name,
                    description=spec.description,
                    kind="custom",
                    action=spec.action,
                    enabled=spec.enabled,
                    threshold=spec.threshold,
                    threshold_source="calibrated" if spec.threshold is None else "manual",
                    openai_keys=[],
                )
            )
            items = [(t, "positive", "api") for t in positives] + [(t, "allow", "api") for t in allows]
            rows = self.exemplars.add_many(topic, items)
            exemplars = _to_exemplars(rows, topic.name)
            vectors = await embedded.current(self.runtime)
            label = label_for(topic)

            def change(guard: Guard) -> Label:
                guard.upsert_label(label)
                try:
                    guard.add_exemplars(exemplars, vectors)
                except Exception:
                    guard.remove_label(label.name)
                    raise
                return guard.labels[label.name]

            def record(stored: Label) -> None:
                topic.threshold = stored.threshold

            edit.apply(topic.name, change, lambda g: g.remove_label(label.name), record)
        return TopicChange(topic_view(topic, len(rows), rows), edit.version)

    async def update(self, topic_id: int, patch: TopicPatch) -> TopicChange:
        async with self.edits.open(self.session, "topic_update") as edit:
            topic = self._get(topic_id)
            if patch.description is not None:
                topic.description = patch.description
            if patch.action is not None:
                topic.action = patch.action
            if patch.enabled is not None:
                topic.enabled = patch.enabled
            if patch.set_threshold:
                topic.threshold = patch.threshold
                topic.threshold_source = "calibrated" if patch.threshold is None else "manual"
            self.session.flush()
            label = label_for(topic)
            name = topic.name
            examples = self.exemplars.for_topic(topic.id)

            def change(guard: Guard) -> tuple[Label, Label]:
                old = guard.labels[name]
                # upsert_label calibrates a custom topic whose threshold is None
                return old, guard.upsert_label(label)

            def record(result: tuple[Label, Label]) -> None:
                topic.threshold = result[1].threshold if topic.kind == "custom" else topic.threshold

            old_label = self._label(name)
            edit.apply(name, change, lambda g: g.upsert_label(old_label), record)
        return TopicChange(topic_view(topic, len(examples), examples), edit.version)

    async def delete(self, topic_id: int) -> int:
        """Delete a custom topic; returns the index version without it."""
        async with self.edits.open(self.session, "topic_delete") as edit:
            topic = self._get(topic_id)
            if topic.kind != "custom":
                raise ConflictError(
                    f"{topic.name!r} is a built-in category and cannot be deleted; disable it with "
                    '`PATCH /v1/topics/{id}` and `{"enabled": false}`',
                    "topic_id",
                )
            name = topic.name
            guard = self.runtime.require().guard
            old_label = guard.labels[name]
            old = [e for e in guard.exemplars.values() if e.label == name]
            old_vectors = guard.vectors([e.id for e in old])
            self.topics.delete(topic)

            def undo(g: Guard) -> None:
                g.upsert_label(old_label)
                g.add_exemplars(old, old_vectors, calibrate=False)

            edit.apply(name, lambda g: g.remove_label(name), undo)
        return edit.version

    async def add_examples(
        self, topic_id: int, examples: Sequence[str], allow_examples: Sequence[str] = ()
    ) -> TopicChange:
        self.limits.check_examples("examples", examples)
        self.limits.check_examples("allow_examples", allow_examples)
        if len(examples) + len(allow_examples) > self.limits.max_examples:
            raise InvalidRequestError(
                f"too many examples in one request; the limit is {self.limits.max_examples} (LIGHTGUARD_MAX_EXAMPLES)",
                "examples",
            )
        positives, allows = _dedupe(examples), _dedupe(allow_examples)
        embedded = await self._embed(positives + allows)  # before the edit: encoding needs no lock
        async with self.edits.open(self.session, "examples_add") as edit:
            topic = self._get(topic_id)
            if topic.kind == "safe" and allow_examples:
                raise InvalidRequestError("the `safe` class takes `examples` only", "allow_examples")
            items = [(t, "positive", "api") for t in positives] + [(t, "allow", "api") for t in allows]
            rows = self.exemplars.add_many(topic, items)
            exemplars = _to_exemplars(rows, topic.name)
            vectors = await embedded.current(self.runtime)
            name, recalibrate = topic.name, topic.kind == "custom" and topic.threshold_source == "calibrated"
            old_label = self._label(name)
            count = self.topics.exemplar_counts().get(topic.id, 0)

            def change(guard: Guard) -> Label:
                guard.add_exemplars(exemplars, vectors, calibrate=False)
                if recalibrate:
                    guard.calibrate_topic(name)
                return guard.labels[name]

            def undo(guard: Guard) -> None:
                guard.remove_exemplars([e.id for e in exemplars])
                guard.upsert_label(old_label)

            def record(stored: Label) -> None:
                if topic.kind == "custom":
                    topic.threshold = stored.threshold

            edit.apply(name, change, undo, record)
        return TopicChange(topic_view(topic, count), edit.version, tuple(example_view(r) for r in rows))

    async def remove_example(self, topic_id: int, example_id: int) -> int:
        """Remove one example; returns the index version without it."""
        async with self.edits.open(self.session, "example_remove") as edit:
            topic = self._get(topic_id)
            row = self.exemplars.get(example_id)
            if row is None or row.topic_id != topic.id:
                raise NotFoundError(f"topic {topic_id} has no example with id {example_id}", "example_id")
            if topic.kind == "custom" and row.role == "positive":
                positives = [e for e in self.exemplars.for_topic(topic.id) if e.role == "positive"]
                if len(positives) <= 1:
                    raise ConflictError(
                        "this is the topic's last positive example; add another first or delete the topic",
                        "example_id",
                    )
            name, recalibrate = topic.name, topic.kind == "custom" and topic.threshold_source == "calibrated"
            guard = self.runtime.require().guard
            old = guard.exemplars[example_id]
            old_vector = guard.vectors([example_id])
            old_label = guard.labels[name]
            self.exemplars.delete(row)

            def change(g: Guard) -> Label:
                g.remove_exemplars([example_id])
                if recalibrate:
                    g.calibrate_topic(name)
                return g.labels[name]

            def undo(g: Guard) -> None:
                g.add_exemplars([old], old_vector, calibrate=False)
                g.upsert_label(old_label)

            def record(stored: Label) -> None:
                if topic.kind == "custom":
                    topic.threshold = stored.threshold

            edit.apply(name, change, undo, record)
        return edit.version

    async def evaluate(
        self, topic_id: int, texts: Sequence[str], labels: Sequence[bool], target_fmr: float | None = None
    ) -> TopicEvaluationReport:
        """Precision / recall / F1 / false-match rate of a custom topic on labelled texts, and suggested thresholds.

        Read-only: the topic and the index are not changed (apply a suggestion with PATCH /v1/topics/{id}).
        """
        if not texts:
            raise InvalidRequestError("send at least one labelled text", "texts")
        self.limits.check_texts("texts", texts, self.limits.max_examples, "LIGHTGUARD_MAX_EXAMPLES")
        topic = self._get(topic_id)
        if topic.kind != "custom":
            raise ConflictError(
                f"{topic.name!r} is a built-in category; evaluate works on custom topics (built-in categories are "
                "measured with `python -m benchmarks.evaluation.evaluate`)",
                "topic_id",
            )
        scored = await self._topic_scores(topic.name, texts)
        target = scored.target_fmr if target_fmr is None else target_fmr
        return TopicEvaluationReport(
            topic_id=topic.id,
            name=topic.name,
            items=len(texts),
            positives=sum(labels),
            negatives=len(labels) - sum(labels),
            target_fmr=target,
            current=threshold_metrics(scored.scores, labels, scored.threshold),
            suggested=suggest_thresholds(scored.scores, labels, target, scored.floor),
            scores=scored.scores,
            index_version=scored.version,
        )

    async def _topic_scores(self, name: str, texts: Sequence[str]) -> _Scored:
        runtime = self.runtime
        verdicts, version = await runtime.classify(texts)
        guard = runtime.require().guard
        label = guard.labels.get(name)
        if label is None:
            raise NotFoundError(f"topic {name!r} is not in the index; run POST /v1/index/rebuild", "topic_id")
        if not label.enabled:
            raise ConflictError(
                f"topic {name!r} is disabled and not scored; enable it with PATCH /v1/topics/{{id}} first", "topic_id"
            )
        # the verdict reports max(0, score) of the worst window or sentence unit: the number classify compares with
        # the threshold
        scores = [float(v.categories.get(name, 0.0)) for v in verdicts]
        config = guard.config
        return _Scored(
            scores, guard.topic_threshold(name), config.topic_target_fmr, config.topic_threshold_floor, version
        )

    async def _embed(self, texts: list[str]) -> _Embedded:
        model_id = self.runtime.require().guard.encoder.model_id
        return _Embedded(texts, model_id, await self.runtime.embed(texts))

    def _label(self, name: str) -> Label:
        label = self.runtime.require().guard.labels.get(name)
        if label is None:
            raise NotFoundError(f"topic {name!r} is not in the index; run POST /v1/index/rebuild", "topic_id")
        return label
