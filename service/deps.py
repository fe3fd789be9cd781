"""Every FastAPI dependency of the service, as Annotated aliases (`SessionDep`, `AdminKeyDep`, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import WithJsonSchema
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.db.engine import session_scope
from service.db.models import ApiKey
from service.schemas.common import MAX_TIMEOUT_S, TIMEOUT_DOC, TIMEOUT_SCHEMA
from service.usecases.classify import ClassifyService
from service.usecases.keys import KeyIdentity, KeyService
from service.usecases.topics import TopicService


async def get_context(request: Request) -> ServiceContext:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request for an attribute read
    ctx: ServiceContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ServiceContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """The request's session: committed when the endpoint returns, rolled back when it raises."""
    with session_scope(ctx.sessions) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit becomes an error response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
AuthorizationHeader = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]
RequestTimeoutHeader = Annotated[
    float | None,
    WithJsonSchema(TIMEOUT_SCHEMA),  # absent, never `null`
    Header(alias="X-Request-Timeout", gt=0, le=MAX_TIMEOUT_S, description=TIMEOUT_DOC),
]


async def require_classify_key(ctx: ContextDep, authorization: AuthorizationHeader = None) -> KeyIdentity | None:
    # The hot path: keys come from the in-memory cache, so classify opens no database session at all.
    return await ctx.key_cache.authenticate(authorization, "classify")


def require_admin_key(session: SessionDep, authorization: AuthorizationHeader = None) -> ApiKey | None:
    return KeyService(session).authenticate(authorization, "admin")


ClassifyKeyDep = Annotated[KeyIdentity | None, Depends(require_classify_key)]
AdminKeyDep = Annotated[ApiKey | None, Depends(require_admin_key)]


async def get_classify_service(ctx: ContextDep, key: ClassifyKeyDep) -> ClassifyService:
    decision_log = ctx.decision_log if ctx.settings.decision_log else None
    return ClassifyService(
        ctx.runtime,
        ctx.limits,
        ctx.metrics,
        decision_log,
        ctx.quotas,
        ctx.settings.request_timeout_s,
        ctx.settings.log_text,
        key,
    )


def get_topic_service(ctx: ContextDep, session: SessionDep, _key: AdminKeyDep) -> TopicService:
    return TopicService(session, ctx.indexing, ctx.limits)


ClassifyServiceDep = Annotated[ClassifyService, Depends(get_classify_service)]
TopicServiceDep = Annotated[TopicService, Depends(get_topic_service)]
