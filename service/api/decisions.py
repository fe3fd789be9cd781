"""The decision log (admin): filtered pages, counts per category over the last hour and day, exports of a range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from service.api.topics import DB_ID_MAX
from service.deps import AdminKeyDep, ContextDep, SessionDep
from service.exception_handlers import error_responses
from service.schemas.common import TOPIC_NAME
from service.schemas.decisions import CategoryCounts, DecisionCounts, DecisionPage, DecisionRead
from service.usecases.decisions import (
    TIME_PATTERN,
    DecisionFilter,
    DecisionService,
    export_decisions,
    export_filename,
    parse_time,
)

router = APIRouter(prefix="/v1/decisions", tags=["decisions"], responses=error_responses(401, 403, 422, 503))

CategoryQuery = Annotated[
    str | None,
    Query(pattern=TOPIC_NAME, description="Only decisions flagged as this category or topic (by name)"),
]
# `true` / `false` only: a plain bool query parameter also takes 1, yes, on... which the schema does not allow
FlaggedQuery = Annotated[
    Literal["true", "false"] | None, Query(description="true: flagged only; false: not flagged only")
]
# Strings of an RFC 3339 pattern rather than `datetime`, which also reads any number as a Unix time
SinceQuery = Annotated[
    str | None,
    Query(
        pattern=TIME_PATTERN,
        json_schema_extra={"format": "date-time"},
        description="Only decisions at or after this time (RFC 3339, e.g. 2026-12-07T10:00:00Z; no offset: UTC)",
    ),
]
UntilQuery = Annotated[
    str | None,
    Query(
        pattern=TIME_PATTERN,
        json_schema_extra={"format": "date-time"},
        description="Only decisions before this time (RFC 3339; no offset: UTC); not after `since`: nothing matches",
    ),
]
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def query_filter(category: str | None, flagged: str | None, since: str | None, until: str | None) -> DecisionFilter:
    return DecisionFilter(
        category,
        None if flagged is None else flagged == "true",
        parse_time(since, "since"),
        parse_time(until, "until"),
    ).checked()


@router.get("", response_model=DecisionPage)
def list_decisions(
    ctx: ContextDep,
    session: SessionDep,
    _key: AdminKeyDep,
    category: CategoryQuery = None,
    flagged: FlaggedQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Decisions per page")] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=DB_ID_MAX, description="Only decisions with a smaller id: `next_before_id`")
    ] = None,
) -> DecisionPage:
    """The decision log, newest first, a page at a time (follow `next_before_id`)."""
    filters = query_filter(category, flagged, since, until)
    rows, next_before = DecisionService(session).page(filters, limit, before_id)
    return DecisionPage(
        decisions=[DecisionRead.model_validate(r) for r in rows],
        next_before_id=next_before,
        text_logged=ctx.settings.log_text,
    )


@router.get("/counts", response_model=DecisionCounts)
def count_decisions(session: SessionDep, _key: AdminKeyDep) -> DecisionCounts:
    """Decisions in the last hour and the last day: totals, flagged, and flagged ones per category."""
    now = datetime.now(UTC)
    windows = DecisionService(session).counts(now)
    return DecisionCounts(
        now=now,
        windows=[
            CategoryCounts(window=w.window, since=w.since, total=w.total, flagged=w.flagged, categories=w.categories)
            for w in windows
        ],
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The matching decisions, oldest first: one JSON object per line, or CSV with a header row",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def export(
    ctx: ContextDep,
    _key: AdminKeyDep,
    export_format: Annotated[Literal["jsonl", "csv"], Query(alias="format", description="File format")] = "jsonl",
    category: CategoryQuery = None,
    flagged: FlaggedQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> StreamingResponse:
    """Download the decisions of a time range (streamed: any size, read in short transactions)."""
    filters = query_filter(category, flagged, since, until)  # a bad time is a 422 before streaming starts
    return StreamingResponse(
        export_decisions(ctx.sessions, filters, export_format),
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{export_filename(filters, export_format)}"'},
    )
