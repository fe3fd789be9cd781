"""Topics: built-in categories and custom topic filters; edits are live in the index at once."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Response, status

from service.deps import ContextDep, TopicServiceDep
from service.exception_handlers import error_responses
from service.schemas.topics import (
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
from service.usecases.topic_views import ExampleView, TopicView
from service.usecases.topics import TopicPatch, TopicSpec

Read = TypeVar("Read", bound=TopicRead)

router = APIRouter(prefix="/v1/topics", tags=["topics"], responses=error_responses(401, 403, 413, 422, 503))

# Ids are 32-bit integers on PostgreSQL (and 64-bit on SQLite): a larger path id failed in the driver (a 500 on
# SQLite, found by schemathesis) before it could be a 404. Out of range is a malformed request: 422.
DB_ID_MAX = 2**31 - 1
TopicId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="Topic id (GET /v1/topics lists them)")]
ExampleId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="Example id (GET /v1/topics/{topic_id} lists them)")]


def _links(source: str, targets: dict[str, tuple[str, str]], **parameters: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links from a 201 to the operations on what it created (clients and schemathesis's stateful tests
    follow them; without them schemathesis guessed `example_id` from the topic's `id` and reported a 404)."""
    refs = {
        name: {"operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method}
        for name, (path, method) in targets.items()
    }
    return {201: {"description": source, "links": {n: r | {"parameters": parameters} for n, r in refs.items()}}}


TOPIC = "/v1/topics/{topic_id}"
CREATED_TOPIC = _links(
    "The topic, indexed and calibrated",
    {
        "GetTopic": (TOPIC, "get"),
        "UpdateTopic": (TOPIC, "patch"),
        "DeleteTopic": (TOPIC, "delete"),
        "AddExamples": (TOPIC + "/examples", "post"),
        "EvaluateTopic": (TOPIC + "/evaluate", "post"),
    },
    topic_id="$response.body#/id",
)
ADDED_EXAMPLES = _links(
    "The topic and the examples added",
    {"RemoveExample": (TOPIC + "/examples/{example_id}", "delete")},
    topic_id="$response.body#/topic/id",
    example_id="$response.body#/added/0/id",
)


def example_read(example: ExampleView) -> ExemplarRead:
    return ExemplarRead.model_validate(example, from_attributes=True)


def _read(schema: type[Read], topic: TopicView, version: int) -> Read:
    """`schema` filled from the view's attributes of the same names (its examples too, for a TopicDetail) and the
    index version that serves it."""
    attributes = {name: getattr(topic, name) for name in schema.model_fields if name != "index_version"}
    return schema.model_validate(attributes | {"index_version": version}, from_attributes=True)


def topic_read(topic: TopicView, version: int) -> TopicRead:
    return _read(TopicRead, topic, version)


def topic_detail(topic: TopicView, version: int) -> TopicDetail:
    return _read(TopicDetail, topic, version)


@router.get("", response_model=TopicList)
async def list_topics(service: TopicServiceDep, ctx: ContextDep) -> TopicList:
    version = ctx.runtime.version
    return TopicList(topics=[topic_read(t, version) for t in service.all_topics()], index_version=version)


@router.post(
    "",
    response_model=TopicDetail,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 409) | CREATED_TOPIC,
)
async def create_topic(body: TopicCreate, service: TopicServiceDep) -> TopicDetail:
    """Create a custom topic from example prompts; it is indexed and calibrated before this returns."""
    created = await service.create(TopicSpec(**body.model_dump()))
    return topic_detail(created.topic, created.version)


@router.get("/{topic_id}", response_model=TopicDetail, responses=error_responses(404))
async def get_topic(topic_id: TopicId, service: TopicServiceDep, ctx: ContextDep) -> TopicDetail:
    return topic_detail(service.detail(topic_id), ctx.runtime.version)


@router.patch("/{topic_id}", response_model=TopicDetail, responses=error_responses(400, 404))
async def update_topic(topic_id: TopicId, body: TopicUpdate, service: TopicServiceDep) -> TopicDetail:
    """Change description / action / enabled / threshold; `"threshold": null` recalibrates."""
    patch = TopicPatch(
        body.description, body.action, body.enabled, body.threshold, "threshold" in body.model_fields_set
    )
    updated = await service.update(topic_id, patch)
    return topic_detail(updated.topic, updated.version)


@router.delete("/{topic_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
async def delete_topic(topic_id: TopicId, service: TopicServiceDep) -> Response:
    await service.delete(topic_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{topic_id}/examples",
    response_model=ExamplesAdded,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 404) | ADDED_EXAMPLES,
)
async def add_examples(topic_id: TopicId, body: ExamplesCreate, service: TopicServiceDep) -> ExamplesAdded:
    added = await service.add_examples(topic_id, body.examples, body.allow_examples)
    return ExamplesAdded(topic=topic_read(added.topic, added.version), added=[example_read(e) for e in added.added])


@router.delete(
    "/{topic_id}/examples/{example_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409)
)
async def remove_example(topic_id: TopicId, example_id: ExampleId, service: TopicServiceDep) -> Response:
    await service.remove_example(topic_id, example_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{topic_id}/evaluate", response_model=TopicEvaluation, responses=error_responses(400, 404, 409))
async def evaluate_topic(topic_id: TopicId, body: TopicEvaluate, service: TopicServiceDep) -> TopicEvaluation:
    """Precision / recall / F1 / false-match rate on labelled texts and suggested thresholds; changes nothing."""
    texts, labels = body.pairs()
    report = await service.evaluate(topic_id, texts, labels, body.target_fmr)
    return TopicEvaluation.model_validate(report, from_attributes=True)
