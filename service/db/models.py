"""Typed SQLAlchemy models: the database is the source of truth; the FAISS index is derived from it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.engine import Base

TOPIC_KINDS = ("builtin", "custom", "safe")
ACTIONS = ("block", "flag")
THRESHOLD_SOURCES = ("calibrated", "manual")
ROLES = ("positive", "allow")
BUILD_STATUSES = ("building", "ready", "failed")
KEY_ROLES = ("admin", "classify")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones: `DateTime(timezone=True)` reads back naive there, and the API then printed timestamps
    without an offset, which is not an RFC 3339 `date-time` (schemathesis found it). Every stored time is UTC, so a
    naive value read back is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value  # type: ignore[no-any-return]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Topic(Base):
    """A built-in safety category, the `safe` class, or an operator's custom topic."""

    __tablename__ = "topics"
    __table_args__ = (
        CheckConstraint(_in("kind", TOPIC_KINDS), name="kind"),
        CheckConstraint(_in("action", ACTIONS), name="action"),
        CheckConstraint(_in("threshold_source", THRESHOLD_SOURCES), name="threshold_source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16), default="block")
    enabled: Mapped[bool] = mapped_column(default=True)
    # None = the guard's default for the kind (built-ins); custom topics always hold a value once indexed.
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold_source: Mapped[str] = mapped_column(String(16), default="calibrated")
    openai_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    exemplars: Mapped[list[Exemplar]] = relationship(
        back_populates="topic", cascade="all, delete-orphan", passive_deletes=True, order_by="Exemplar.id"
    )


class Exemplar(Base):
    """An example text of a topic; role `allow` is a hard negative that must not trigger the topic."""

    __tablename__ = "exemplars"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), default="positive")
    source: Mapped[str] = mapped_column(String(200), default="api")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    topic: Mapped[Topic] = relationship(back_populates="exemplars")


class IndexBuild(Base):
    """One version of the index: a full build (`trigger` startup/rebuild/cli) or an incremental edit.

    The rows are also the change log other worker processes follow: a `ready` row with a `topic` changed only that
    topic (its labels and exemplars are re-read); a `ready` row without one may have changed everything.
    """

    __tablename__ = "index_builds"
    __table_args__ = (CheckConstraint(_in("status", BUILD_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    trigger: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    exemplar_count: Mapped[int] = mapped_column(Integer, default=0)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # the topic name an incremental edit changed (names are unique and never renamed); None for full builds
    topic: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # A full build's progress and liveness, so that any process can answer a poll (issue 19): texts embedded so far
    # (None: queued, not started) of `total` (None: not known yet), the process building it (`host:pid`) and its last
    # heartbeat. A `building` row whose holder is gone is abandoned (service.usecases.rebuilds).
    embedded: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class IndexArtifact(Base):
    """The saved guard of one committed full build, so that a replica with an empty home loads it instead of
    re-embedding every exemplar. `files` maps each file of the artifact directory to its SHA-256 and chunk count;
    `checksum` covers them all: an artifact whose chunks do not match is skipped."""

    __tablename__ = "index_artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)  # the full build's index_builds.version
    model_id: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class IndexArtifactChunk(Base):
    """One chunk of one file of an `IndexArtifact` (chunked: no single value nears a driver's or server's limit)."""

    __tablename__ = "index_artifact_chunks"

    artifact_id: Mapped[int] = mapped_column(ForeignKey("index_artifacts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class IndexLock(Base):
    """One row (id 1) that every change to the index state locks first: it serialises edits across processes.

    Updating it takes SQLite's write lock or PostgreSQL's row lock until the transaction ends, so versions are
    assigned in commit order and an editor can catch up with the database before applying its own change.
    """

    __tablename__ = "index_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    acquired_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ApiKey(Base):
    """An API key: only its SHA-256 and a short display prefix are stored."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_in("role", KEY_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # the key's own limits on the classify routes (service/usecases/quotas.py); NULL: the service defaults
    rate_limit: Mapped[str | None] = mapped_column(String(200), nullable=True)
    max_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Decision(Base):
    """One classified text: a digest and the verdict; the raw text only when LIGHTGUARD_LOG_TEXT is on."""

    __tablename__ = "decisions"
    __table_args__ = (
        # time ranges (retention, exports, counts per category over the last hour / day: the category is in the
        # index, so counting reads no table rows) and the console's category filter, newest first by id
        Index("ix_decisions_created_at_category", "created_at", "category"),
        Index("ix_decisions_category_id", "category", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    endpoint: Mapped[str] = mapped_column(String(32))
    text_digest: Mapped[str] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    flagged: Mapped[bool] = mapped_column()
    category: Mapped[str | None] = mapped_column(String(100), nullable=True)
    score: Mapped[float] = mapped_column(Float)
    action: Mapped[str | None] = mapped_column(String(16), nullable=True)
    index_version: Mapped[int] = mapped_column(Integer)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True)
