"""What the topic use cases return: a topic and its examples as the database holds them, detached from the session
(`TopicView`, `ExampleView`), and a committed change with the index version that serves it (`TopicChange`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.db.models import Exemplar as ExemplarRow
from service.db.models import Topic


@dataclass(frozen=True, slots=True)
class ExampleView:
    id: int
    text: str
    role: str
    source: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TopicView:
    """A topic as the database holds it (detached from the session); `examples` when they were read."""

    id: int
    name: str
    title: str
    description: str
    kind: str
    action: str
    enabled: bool
    threshold: float | None
    threshold_source: str
    openai_keys: tuple[str, ...]
    example_count: int
    created_at: datetime
    updated_at: datetime
    examples: tuple[ExampleView, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicChange:
    """A committed topic change: the topic after it, the examples it added, the index version that serves it."""

    topic: TopicView
    version: int
    added: tuple[ExampleView, ...] = field(default_factory=tuple)


def example_view(row: ExemplarRow) -> ExampleView:
    return ExampleView(row.id, row.text, row.role, row.source, row.created_at)


def topic_view(topic: Topic, example_count: int, examples: Sequence[ExemplarRow] = ()) -> TopicView:
    return TopicView(
        id=topic.id,
        name=topic.name,
        title=topic.title,
        description=topic.description,
        kind=topic.kind,
        action=topic.action,
        enabled=topic.enabled,
        threshold=topic.threshold,
        threshold_source=topic.threshold_source,
        openai_keys=tuple(topic.openai_keys),
        example_count=example_count,
        created_at=topic.created_at,
        updated_at=topic.updated_at,
        examples=tuple(example_view(e) for e in examples),
    )
