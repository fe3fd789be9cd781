"""Topic use cases: create, read, update, delete custom topics and their examples; live in the index at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from sqlalchemy.orm import Session

from index import Exemplar, Guard, Label, Role, best_f1_threshold, fmr_threshold
from service.db.models import Exemplar as ExemplarRow
from service.db.models import Topic
from service.db.repositories import ExemplarRepository, TopicRepository
from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.schemas.common import (
    ExamplesCreate,
    ThresholdMetrics,
    ThresholdSuggestion,
    TopicCreate,
    TopicEvaluate,
    TopicEvaluation,
    TopicUpdate,
)
from service.usecases.indexing import IndexService, label_for
from service.usecases.limits import Limits


def _to_exemplars(rows: Sequence[ExemplarRow], name: str) -> list[Exemplar]:
    return [Exemplar(r.id, r.text, name, cast(Role, r.role)) for r in rows]


def _dedupe(texts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in texts))


def threshold_metrics(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> ThresholdMetrics:
    """Precision, recall, F1 and false-match rate when an item matches at score >= threshold (empty sides give 0)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    hit = s >= threshold
    tp, fp = int((hit & y).sum()), int((hit & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / int(y.sum()) if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fmr = fp / int((~y).sum()) if (~y).any() else 0.0
    return ThresholdMetrics(
        threshold=round(threshold, 6),
        precision=round(precision, 6),
        recall=round(recall, 6),
        f1=round(f1, 6),
        false_match_rate=round(fmr, 6),
    )


def suggest_thresholds(scores: Sequence[float], labels: Sequence[bool], target_fmr: float) -> ThresholdSuggestion:
    """The max-F1 threshold and the target-false-match-rate threshold on labelled scores, with their metrics."""
    best, _ = best_f1_threshold(np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool))
    return ThresholdSuggestion(
        best_f1=threshold_metrics(scores, labels, best),
        target_fmr=threshold_metrics(scores, labels, fmr_threshold(scores, labels, target_fmr)),
    )


@dataclass(frozen=True, slots=True)
class _Scored:
    scores: list[float]
    threshold: float
    target_fmr: float
    version: int


class TopicService:
    def __init__(self, session: Session, indexing: IndexService, limits: Limits) -> None:
        self.session = session
        self.indexing = indexing
        self.limits = limits
        self.topics = TopicRepository(session)
        self.exemplars = ExemplarRepository(session)

    def all_topics(self) -> list[Topic]:
        return self.topics.find()

    def get(self, topic_id: int) -> Topic:
        topic = self.topics.get(topic_id)
        if topic is None:
            raise NotFoundError(f"no topic with id {topic_id}; list them with GET /v1/topics", "topic_id")
        return topic

    def example_counts(self) -> dict[int, int]:
        return self.topics.exemplar_counts()

    async def create(self, body: TopicCreate) -> Topic:
        self.limits.check_examples("examples", body.examples)
        self.limits.check_examples("allow_examples", body.allow_examples)
        if len(body.examples) + len(body.allow_examples) > self.limits.max_examples:
            raise InvalidRequestError(
                f"{len(body.examples) + len(body.allow_examples)} examples in total; the limit is "
                f"{self.limits.max_examples} per request (LIGHTGUARD_MAX_EXAMPLES); add the rest with "
                "POST /v1/topics/{id}/examples",
                "examples",
            )
        runtime = self.indexing.runtime
        async with runtime.edit_lock:
            await self.indexing.begin_edit(self.session, "topic_create")
            if self.topics.get_by_name(body.name) is not None:
                raise ConflictError(f"a topic named {body.name!r} exists; pick another name or update it", "name")
            topic = self.topics.add(
                Topic(
                    name=body.name,
                    title=body.name,
                    description=body.description,
                    kind="custom",
                    action=body.action,
                    enabled=body.enabled,
                    threshold=body.threshold,
                    threshold_source="calibrated" if body.threshold is None else "manual",
                    openai_keys=[],
                )
            )
            items = [(t, "positive", "api") for t in _dedupe(body.examples)]
            items += [(t, "allow", "api") for t in _dedupe(body.allow_examples)]
            rows = self.exemplars.add_many(topic, items)
            exemplars = _to_exemplars(rows, topic.name)
            vectors = await runtime.embed([e.text for e in exemplars])
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

            await self.indexing.commit_edit(
                self.session,
                f"topic_create:{topic.name}",
                topic.name,
                change,
                lambda g: g.remove_label(label.name),
                record,
            )
            return topic

    async def update(self, topic_id: int, body: TopicUpdate) -> Topic:
        async with self.indexing.runtime.edit_lock:
            await self.indexing.begin_edit(self.session, "topic_update")
            topic = self.get(topic_id)
            sent = body.model_fields_set
            if "description" in sent and body.description is not None:
                topic.description = body.description
            if "action" in sent and body.action is not None:
                topic.action = body.action
            if "enabled" in sent and body.enabled is not None:
                topic.enabled = body.enabled
            if "threshold" in sent:
                topic.threshold = body.threshold
                topic.threshold_source = "calibrated" if body.threshold is None else "manual"
            self.session.flush()
            label = label_for(topic)
            name = topic.name

            def change(guard: Guard) -> tuple[Label, Label]:
                old = guard.labels[name]
                # upsert_label calibrates a custom topic whose threshold is None
                return old, guard.upsert_label(label)

            def record(result: tuple[Label, Label]) -> None:
                topic.threshold = result[1].threshold if topic.kind == "custom" else topic.threshold

            old_label = await self._label(name)
            await self.indexing.commit_edit(
                self.session, f"topic_update:{name}", name, change, lambda g: g.upsert_label(old_label), record
            )
            return topic

    async def delete(self, topic_id: int) -> None:
        async with self.indexing.runtime.edit_lock:
            await self.indexing.begin_edit(self.session, "topic_delete")
            topic = self.get(topic_id)
            if topic.kind != "custom":
                raise ConflictError(
                    f"{topic.name!r} is a built-in category and cannot be deleted; disable it with "
                    '`PATCH /v1/topics/{id}` and `{"enabled": false}`',
                    "topic_id",
                )
            name = topic.name
            guard = self.indexing.runtime.require().guard
            old_label = guard.labels[name]
            old = [e for e in guard.exemplars.values() if e.label == name]
            old_vectors = guard.vectors([e.id for e in old])
            self.topics.delete(topic)

            def undo(g: Guard) -> None:
                g.upsert_label(old_label)
                g.add_exemplars(old, old_vectors, calibrate=False)

            await self.indexing.commit_edit(
                self.session, f"topic_delete:{name}", name, lambda g: g.remove_label(name), undo
            )

    async def add_examples(self, topic_id: int, body: ExamplesCreate) -> tuple[Topic, list[ExemplarRow]]:
        self.limits.check_examples("examples", body.examples)
        self.limits.check_examples("allow_examples", body.allow_examples)
        if len(body.examples) + len(body.allow_examples) > self.limits.max_examples:
            raise InvalidRequestError(
                f"too many examples in one request; the limit is {self.limits.max_examples} (LIGHTGUARD_MAX_EXAMPLES)",
                "examples",
            )
        runtime = self.indexing.runtime
        async with runtime.edit_lock:
            await self.indexing.begin_edit(self.session, "examples_add")
            topic = self.get(topic_id)
            if topic.kind == "safe" and body.allow_examples:
                raise InvalidRequestError("the `safe` class takes `examples` only", "allow_examples")
            items = [(t, "positive", "api") for t in _dedupe(body.examples)]
            items += [(t, "allow", "api") for t in _dedupe(body.allow_examples)]
            rows = self.exemplars.add_many(topic, items)
            exemplars = _to_exemplars(rows, topic.name)
            vectors = await runtime.embed([e.text for e in exemplars])
            name, recalibrate = topic.name, topic.kind == "custom" and topic.threshold_source == "calibrated"
            old_label = await self._label(name)

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

            await self.indexing.commit_edit(self.session, f"examples_add:{name}", name, change, undo, record)
            return topic, rows

    async def remove_example(self, topic_id: int, example_id: int) -> None:
        runtime = self.indexing.runtime
        async with runtime.edit_lock:
            await self.indexing.begin_edit(self.session, "example_remove")
            topic = self.get(topic_id)
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
            guard = runtime.require().guard
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

            await self.indexing.commit_edit(self.session, f"example_remove:{name}", name, change, undo, record)

    async def evaluate(self, topic_id: int, body: TopicEvaluate) -> TopicEvaluation:
        """Precision / recall / F1 / false-match rate of a custom topic on labelled texts, and suggested thresholds.

        Read-only: the topic and the index are not changed (apply a suggestion with PATCH /v1/topics/{id}).
        """
        texts, labels = body.pairs()
        if not texts:
            raise InvalidRequestError("send at least one labelled text", "texts")
        self.limits.check_texts("texts", texts, self.limits.max_examples, "LIGHTGUARD_MAX_EXAMPLES")
        topic = self.get(topic_id)
        if topic.kind != "custom":
            raise ConflictError(
                f"{topic.name!r} is a built-in category; evaluate works on custom topics (built-in categories are "
                "measured with scripts/evaluate.py)",
                "topic_id",
            )
        scored = await self._topic_scores(topic.name, texts)
        target_fmr = scored.target_fmr if body.target_fmr is None else body.target_fmr
        return TopicEvaluation(
            topic_id=topic.id,
            name=topic.name,
            items=len(texts),
            positives=sum(labels),
            negatives=len(labels) - sum(labels),
            target_fmr=target_fmr,
            current=threshold_metrics(scored.scores, labels, scored.threshold),
            suggested=suggest_thresholds(scored.scores, labels, target_fmr),
            scores=scored.scores,
            index_version=scored.version,
        )

    async def _topic_scores(self, name: str, texts: Sequence[str]) -> _Scored:
        runtime = self.indexing.runtime
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
        return _Scored(scores, guard.topic_threshold(name), guard.config.topic_target_fmr, version)

    async def _label(self, name: str) -> Label:
        label = self.indexing.runtime.require().guard.labels.get(name)
        if label is None:
            raise NotFoundError(f"topic {name!r} is not in the index; run POST /v1/index/rebuild", "topic_id")
        return label
