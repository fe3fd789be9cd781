"""Reading the decision log: filtered pages (newest first), counts per category, and exports of a time range."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Decision, utcnow
from service.db.repositories import DecisionRepository
from service.errors import InvalidRequestError

ExportFormat = Literal["jsonl", "csv"]
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "endpoint",
    "text_digest",
    "text",
    "flagged",
    "category",
    "score",
    "action",
    "index_version",
    "api_key_id",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_CHUNK_ROWS = 2_000  # rows per read: one short transaction each, so an export never holds the database
WINDOWS: tuple[tuple[Literal["hour", "day"], timedelta], ...] = (
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
)


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """Which decisions: all of them when every field is None. `since` is inclusive, `until` exclusive."""

    category: str | None = None
    flagged: bool | None = None
    since: datetime | None = None
    until: datetime | None = None

    def checked(self) -> DecisionFilter:
        """The filter with naive times read as UTC; InvalidRequestError when the range is empty by construction."""
        # `until` not after `since` is an empty range, not an error: "from 10:00 to 10:00" matches nothing
        return DecisionFilter(self.category or None, self.flagged, as_utc(self.since), as_utc(self.until))

    def conditions(self) -> dict[str, Any]:
        return {"category": self.category, "flagged": self.flagged, "since": self.since, "until": self.until}


@dataclass(frozen=True, slots=True)
class WindowCounts:
    window: Literal["hour", "day"]
    since: datetime
    total: int
    flagged: int
    categories: dict[str, int]


def as_utc(moment: datetime | None) -> datetime | None:
    """A time with an offset, converted to UTC; a naive one is taken as UTC already (every stored time is).

    A time whose UTC form is outside years 1-9999 (0001-01-01T00:00+05:00) becomes the first or last time there is.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        offset = moment.utcoffset()
        earliest = offset is not None and offset > timedelta(0)
        return (datetime.min if earliest else datetime.max).replace(tzinfo=UTC)


TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})?$"
"""RFC 3339 date-times (and the same without an offset, read as UTC): what `parse_time` takes."""
_TIME = TypeAdapter(datetime)


def parse_time(text: str | None, field: str) -> datetime | None:
    """A time given as RFC 3339 text, in UTC; InvalidRequestError naming `field` when it is no such time."""
    if text is None:
        return None
    if re.fullmatch(TIME_PATTERN.strip("^$"), text) is None:
        raise InvalidRequestError(f"`{field}` is not an RFC 3339 time like 2026-12-07T10:00:00Z: {text!r}", field)
    try:
        return as_utc(_TIME.validate_python(text))
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "invalid")
        raise InvalidRequestError(f"`{field}` is not a valid time ({reason}): {text!r}", field) from exc


class DecisionService:
    """Read-only queries on the decision log (one request's session)."""

    def __init__(self, session: Session) -> None:
        self.decisions = DecisionRepository(session)

    def page(
        self, filters: DecisionFilter, limit: int, before_id: int | None = None
    ) -> tuple[list[Decision], int | None]:
        """Up to `limit` decisions older than `before_id` (newest first) and the cursor of the next page."""
        rows = self.decisions.newest(limit + 1, before_id, **filters.checked().conditions())
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    def counts(self, now: datetime | None = None) -> list[WindowCounts]:
        """Decisions in the last hour and the last day: totals, flagged, and flagged ones per category."""
        now = now or utcnow()
        out = []
        for name, span in WINDOWS:
            since = now - span
            by_category = self.decisions.count_by_category(since, now)
            flagged = {str(c): n for c, n in by_category.items() if c is not None}
            out.append(WindowCounts(name, since, sum(by_category.values()), sum(flagged.values()), flagged))
        return out


def export_decisions(
    sessions: sessionmaker[Session],
    filters: DecisionFilter,
    fmt: ExportFormat,
    chunk_rows: int = EXPORT_CHUNK_ROWS,
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The matching decisions, oldest first, as JSON lines or CSV (with a header row), in text chunks.

    Each chunk is read in a session of its own by keyset (id), so a long export of a busy log neither holds one
    transaction open nor skips or repeats rows; rows written during the export after its current position are
    included if they match the range. `on_rows` is told how many rows each chunk holds.
    """
    filters = filters.checked()
    if fmt == "csv":
        yield _csv_rows([EXPORT_COLUMNS])
    after_id = 0
    while True:
        with sessions() as session:
            rows = DecisionRepository(session).oldest(chunk_rows, after_id, **filters.conditions())
        if not rows:
            return
        after_id = rows[-1].id
        if on_rows is not None:
            on_rows(len(rows))
        records = [decision_record(row) for row in rows]
        if fmt == "csv":
            yield _csv_rows([[_csv_value(r[c]) for c in EXPORT_COLUMNS] for r in records])
        else:
            yield "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if len(rows) < chunk_rows:
            return


def decision_record(row: Decision) -> dict[str, Any]:
    created = as_utc(row.created_at)
    return {
        "id": row.id,
        "created_at": created.isoformat() if created is not None else None,
        "endpoint": row.endpoint,
        "text_digest": row.text_digest,
        "text": row.text,
        "flagged": row.flagged,
        "category": row.category,
        "score": row.score,
        "action": row.action,
        "index_version": row.index_version,
        "api_key_id": row.api_key_id,
    }


def export_filename(filters: DecisionFilter, fmt: ExportFormat) -> str:
    def stamp(moment: datetime | None, default: str) -> str:
        return moment.strftime("%Y%m%dT%H%M%SZ") if moment is not None else default

    checked = filters.checked()
    return f"decisions-{stamp(checked.since, 'start')}-{stamp(checked.until, 'now')}.{fmt}"


def _csv_value(value: Any) -> Any:
    """A CSV cell; a text starting like a spreadsheet formula gets a leading `'` (OWASP's CSV-injection advice):
    the log holds whatever callers sent, and `=HYPERLINK(...)` would run when an operator opens the file."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def _csv_rows(rows: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
