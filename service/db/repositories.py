"""Repositories: queries and writes on one session. They flush when ids are needed and never commit."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from service.db.models import ApiKey, Decision, Exemplar, IndexBuild, IndexLock, Topic, utcnow


class TopicRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, kind: str | None = None) -> list[Topic]:
        query = select(Topic).order_by(Topic.id)
        if kind is not None:
            query = query.where(Topic.kind == kind)
        return list(self.session.scalars(query))

    def get(self, topic_id: int) -> Topic | None:
        return self.session.get(Topic, topic_id)

    def get_by_name(self, name: str) -> Topic | None:
        return self.session.scalars(select(Topic).where(Topic.name == name)).one_or_none()

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Topic)) or 0)

    def add(self, topic: Topic) -> Topic:
        self.session.add(topic)
        self.session.flush()
        return topic

    def delete(self, topic: Topic) -> None:
        # Bulk-delete children first: SQLite enforces the FK only with PRAGMA foreign_keys, and this keeps it explicit.
        self.session.execute(delete(Exemplar).where(Exemplar.topic_id == topic.id))
        self.session.delete(topic)
        self.session.flush()

    def exemplar_counts(self) -> dict[int, int]:
        rows = self.session.execute(select(Exemplar.topic_id, func.count()).group_by(Exemplar.topic_id))
        return {int(topic_id): int(n) for topic_id, n in rows}


class ExemplarRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, topic: Topic, items: Iterable[tuple[str, str, str]]) -> list[Exemplar]:
        """Insert (text, role, source) rows for `topic`; returns them with their ids."""
        rows = [Exemplar(topic_id=topic.id, text=text, role=role, source=source) for text, role, source in items]
        self.session.add_all(rows)
        self.session.flush()
        return rows

    def insert_many(self, topic: Topic, items: Iterable[tuple[str, str, str]]) -> int:
        """Insert (text, role, source) rows for `topic` in one executemany, with no ORM object per row (seeding
        ~30k exemplars: the seeding took ~2 s instead of ~12 on a loaded 2-core machine); returns how many."""
        now = utcnow()
        rows = [
            {"topic_id": topic.id, "text": text, "role": role, "source": source, "created_at": now}
            for text, role, source in items
        ]
        if rows:
            self.session.execute(insert(Exemplar), rows)
        return len(rows)

    def get(self, exemplar_id: int) -> Exemplar | None:
        return self.session.get(Exemplar, exemplar_id)

    def for_topic(self, topic_id: int) -> list[Exemplar]:
        return list(self.session.scalars(select(Exemplar).where(Exemplar.topic_id == topic_id).order_by(Exemplar.id)))

    def delete(self, exemplar: Exemplar) -> None:
        self.session.delete(exemplar)
        self.session.flush()

    def all_with_topics(self) -> list[tuple[Exemplar, str]]:
        """Every exemplar with its topic name, ordered by id (the order a build indexes them in)."""
        rows = self.session.execute(select(Exemplar, Topic.name).join(Topic).order_by(Exemplar.id))
        return [(e, name) for e, name in rows.tuples()]

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Exemplar)) or 0)


class IndexBuildRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def latest_version(self) -> int:
        """The highest version assigned, whatever its status (new versions are allocated above it)."""
        return int(self.session.scalar(select(func.max(IndexBuild.version))) or 0)

    def latest_ready_version(self) -> int:
        """The version of the newest committed index state (the cheap query a follower polls)."""
        query = select(func.max(IndexBuild.version)).where(IndexBuild.status == "ready")
        return int(self.session.scalar(query) or 0)

    def ready_since(self, version: int) -> list[IndexBuild]:
        """Committed changes newer than `version`, oldest first (building and failed rows changed nothing)."""
        query = (
            select(IndexBuild)
            .where(IndexBuild.status == "ready", IndexBuild.version > version)
            .order_by(IndexBuild.version)
        )
        return list(self.session.scalars(query))

    def latest_ready(self) -> IndexBuild | None:
        query = select(IndexBuild).where(IndexBuild.status == "ready").order_by(IndexBuild.version.desc()).limit(1)
        return self.session.scalars(query).first()

    def latest_full_build(self) -> IndexBuild | None:
        query = (
            select(IndexBuild)
            .where(IndexBuild.trigger.in_(("startup", "rebuild", "cli")))
            .order_by(IndexBuild.version.desc())
            .limit(1)
        )
        return self.session.scalars(query).first()

    def get(self, build_id: int) -> IndexBuild | None:
        return self.session.get(IndexBuild, build_id)

    def building(self) -> list[IndexBuild]:
        """Full builds not finished (queued or embedding, or left so by a process that died), oldest first."""
        return list(
            self.session.scalars(select(IndexBuild).where(IndexBuild.status == "building").order_by(IndexBuild.id))
        )

    def record_progress(self, build_id: int, embedded: int | None, total: int | None, at: datetime) -> None:
        """Store a running build's progress and heartbeat (a finished or failed row is left as it is)."""
        values = {"embedded": embedded, "total": total, "heartbeat_at": at}
        self.session.execute(
            update(IndexBuild).where(IndexBuild.id == build_id, IndexBuild.status == "building").values(**values)
        )

    def fail(self, build: IndexBuild, error: str) -> bool:
        """Mark a `building` row failed; False (and `build` re-read) when it had finished meanwhile."""
        done = self.session.execute(
            update(IndexBuild)
            .where(IndexBuild.id == build.id, IndexBuild.status == "building")
            .values(status="failed", error=error, finished_at=utcnow())
        )
        self.session.refresh(build)
        return _rowcount(done) > 0

    def add(self, build: IndexBuild) -> IndexBuild:
        self.session.add(build)
        self.session.flush()
        return build

    def recent(self, limit: int = 20) -> list[IndexBuild]:
        return list(self.session.scalars(select(IndexBuild).order_by(IndexBuild.version.desc()).limit(limit)))


class IndexLockRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def acquire(self, purpose: str) -> None:
        """Lock the index state until this session's transaction ends (blocks while another process holds it).

        An UPDATE of the one lock row takes SQLite's database write lock (waiting up to the busy timeout) or a
        PostgreSQL row lock; commit or rollback releases it. The row names the holder (host, pid, purpose) while
        the lock is held. It comes from migration 0002; a schema made without it gets the row here.
        """
        holder = f"{socket.gethostname()}:{os.getpid()} {purpose}"
        stamp = {"holder": holder[:200], "acquired_at": utcnow()}
        done = self.session.execute(update(IndexLock).where(IndexLock.id == 1).values(**stamp))
        if getattr(done, "rowcount", 1) == 0:
            self.session.add(IndexLock(id=1, **stamp))
            self.session.flush()


class ApiKeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        self.session.flush()
        return key

    def active_by_prefix(self, prefix: str) -> Sequence[ApiKey]:
        query = select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        return list(self.session.scalars(query))

    def by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()

    def count_active(self) -> int:
        query = select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
        return int(self.session.scalar(query) or 0)

    def find_all(self) -> list[ApiKey]:
        return list(self.session.scalars(select(ApiKey).order_by(ApiKey.id)))

    def get(self, key_id: int) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def revoke(self, key: ApiKey, when: datetime | None = None) -> None:
        key.revoked_at = when or utcnow()
        self.session.flush()

    def set_limits(self, key: ApiKey, rate_limit: str | None, max_concurrency: int | None) -> None:
        key.rate_limit = rate_limit
        key.max_concurrency = max_concurrency
        self.session.flush()


class DecisionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert decisions given as column → value mappings: one executemany, no ORM unit of work per row."""
        if rows:
            self.session.execute(insert(Decision), list(rows))

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Decision)) or 0)

    def recent(self, limit: int = 50) -> list[Decision]:
        return list(self.session.scalars(select(Decision).order_by(Decision.id.desc()).limit(limit)))

    def newest(self, limit: int, before_id: int | None = None, **conditions: Any) -> list[Decision]:
        """Matching decisions with an id below `before_id`, newest first (keyset paging: no OFFSET scans)."""
        query = select(Decision).where(*_decision_conditions(**conditions))
        if before_id is not None:
            query = query.where(Decision.id < before_id)
        return list(self.session.scalars(query.order_by(Decision.id.desc()).limit(limit)))

    def oldest(self, limit: int, after_id: int = 0, **conditions: Any) -> list[Decision]:
        """Matching decisions with an id above `after_id`, oldest first (exports read a range in chunks)."""
        query = select(Decision).where(Decision.id > after_id, *_decision_conditions(**conditions))
        return list(self.session.scalars(query.order_by(Decision.id).limit(limit)))

    def count_by_category(self, since: datetime, until: datetime) -> dict[str | None, int]:
        """Decisions per category in [since, until); None counts those not flagged."""
        query = (
            select(Decision.category, func.count())
            .where(Decision.created_at >= since, Decision.created_at < until)
            .group_by(Decision.category)
        )
        return {category: int(n) for category, n in self.session.execute(query)}

    def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        """Delete at most `limit` decisions made before `cutoff`; returns how many."""
        batch = select(Decision.id).where(Decision.created_at < cutoff).limit(limit).scalar_subquery()
        return _rowcount(self.session.execute(delete(Decision).where(Decision.id.in_(batch))))

    def id_beyond_newest(self, keep: int) -> int | None:
        """The id of the newest decision past the `keep` newest ones (it and older ones are beyond), if any."""
        query = select(Decision.id).order_by(Decision.id.desc()).offset(keep).limit(1)
        found = self.session.scalar(query)
        return None if found is None else int(found)

    def delete_up_to(self, max_id: int, limit: int) -> int:
        """Delete at most `limit` decisions with an id up to `max_id`; returns how many."""
        batch = select(Decision.id).where(Decision.id <= max_id).limit(limit).scalar_subquery()
        return _rowcount(self.session.execute(delete(Decision).where(Decision.id.in_(batch))))


def _decision_conditions(
    category: str | None = None,
    flagged: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Any]:
    conditions: list[Any] = []
    if category is not None:
        conditions.append(Decision.category == category)
    if flagged is not None:
        conditions.append(Decision.flagged == flagged)
    if since is not None:
        conditions.append(Decision.created_at >= since)
    if until is not None:
        conditions.append(Decision.created_at < until)
    return conditions


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def topics_with_exemplars(session: Session, names: Iterable[str] | None = None) -> list[Topic]:
    """Every topic (or those named) with its exemplars loaded in two queries (for builds, digests, catch-up)."""
    query = select(Topic).options(selectinload(Topic.exemplars)).order_by(Topic.id)
    if names is not None:
        query = query.where(Topic.name.in_(sorted(set(names))))
    return list(session.scalars(query))
