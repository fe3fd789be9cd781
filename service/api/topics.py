"""Topics: built-in categories and custom topic filters; edits are live in the index at once."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.deps import ContextDep, TopicServiceDep
from service.models import Topic
from service.schemas import (
    ExamplesAdded,
    ExamplesCreate,
    ExemplarRead,
    TopicCreate,
    TopicDetail,
    TopicEvaluate,
    TopicEvaluation,
    TopicList,
    TopicRead,
    TopicUpdate,
)

router = APIRouter(prefix="/v1/topics", tags=["topics"])


def topic_read(topic: Topic, example_count: int, version: int) -> TopicRead:
    return TopicRead(
        id=topic.id,
        name=topic.name,
        title=topic.title,
        description=topic.description,
        kind=topic.kind,
        action=topic.action,
        enabled=topic.enabled,
        threshold=topic.threshold,
        threshold_source=topic.threshold_source,
        openai_keys=list(topic.openai_keys),
        example_count=example_count,
        created_at=topic.created_at,
        updated_at=topic.updated_at,
        index_version=version,
    )


def topic_detail(topic: Topic, version: int) -> TopicDetail:
    examples = [ExemplarRead.model_validate(e) for e in topic.exemplars]
    return TopicDetail(**topic_read(topic, len(examples), version).model_dump(), examples=examples)


@router.get("", response_model=TopicList)
async def list_topics(service: TopicServiceDep, ctx: ContextDep) -> TopicList:
    counts = service.example_counts()
    version = ctx.runtime.version
    return TopicList(
        topics=[topic_read(t, counts.get(t.id, 0), version) for t in service.all_topics()], index_version=version
    )


@router.post("", response_model=TopicDetail, status_code=status.HTTP_201_CREATED)
async def create_topic(body: TopicCreate, service: TopicServiceDep, ctx: ContextDep) -> TopicDetail:
    """Create a custom topic from example prompts; it is indexed and calibrated before this returns."""
    topic = await service.create(body)
    return topic_detail(topic, ctx.runtime.version)


@router.get("/{topic_id}", response_model=TopicDetail)
async def get_topic(topic_id: int, service: TopicServiceDep, ctx: ContextDep) -> TopicDetail:
    return topic_detail(service.get(topic_id), ctx.runtime.version)


@router.patch("/{topic_id}", response_model=TopicDetail)
async def update_topic(topic_id: int, body: TopicUpdate, service: TopicServiceDep, ctx: ContextDep) -> TopicDetail:
    """Change description / action / enabled / threshold; `"threshold": null` recalibrates."""
    topic = await service.update(topic_id, body)
    return topic_detail(topic, ctx.runtime.version)


@router.delete("/{topic_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_topic(topic_id: int, service: TopicServiceDep) -> Response:
    await service.delete(topic_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{topic_id}/examples", response_model=ExamplesAdded, status_code=status.HTTP_201_CREATED)
async def add_examples(topic_id: int, body: ExamplesCreate, service: TopicServiceDep, ctx: ContextDep) -> ExamplesAdded:
    topic, rows = await service.add_examples(topic_id, body)
    counts = service.example_counts()
    return ExamplesAdded(
        topic=topic_read(topic, counts.get(topic.id, 0), ctx.runtime.version),
        added=[ExemplarRead.model_validate(r) for r in rows],
    )


@router.delete("/{topic_id}/examples/{example_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_example(topic_id: int, example_id: int, service: TopicServiceDep) -> Response:
    await service.remove_example(topic_id, example_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{topic_id}/evaluate", response_model=TopicEvaluation)
async def evaluate_topic(topic_id: int, body: TopicEvaluate, service: TopicServiceDep) -> TopicEvaluation:
    """Precision / recall / F1 / false-match rate on labelled texts and suggested thresholds; changes nothing."""
    return await service.evaluate(topic_id, body)
