"""Everything a running service holds (settings, engine, sessions, live guard, metrics), built in one place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from index import EmbeddingCache, Encoder, Guard, load_guard_config
from service.db.decision_log import DecisionLog
from service.db.engine import (
    create_db_engine,
    make_sessionmaker,
    session_scope,
    startup_lock,
    upgrade_database,
)
from service.errors import DatabaseUnavailableError
from service.metrics import Metrics
from service.operating_points import apply_operating_point
from service.serving.encoders import build_embedding_cache, build_encoder
from service.serving.runtime import GuardRuntime
from service.settings import Settings
from service.usecases.artifacts import IndexArtifacts
from service.usecases.edits import IndexEdits
from service.usecases.following import IndexFollowing
from service.usecases.keys import CREATE_HINT, KeyCache, KeyService
from service.usecases.lifecycle import IndexLifecycle
from service.usecases.limits import Limits
from service.usecases.quotas import Quotas
from service.usecases.rebuilds import RebuildJobs
from service.usecases.seed import seed_database

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ServiceContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    runtime: GuardRuntime
    lifecycle: IndexLifecycle  # load / rebuild / verify
    rebuilds: RebuildJobs  # rebuilds as jobs: one at a time across processes, polled by id
    following: IndexFollowing  # catch up with other processes
    edits: IndexEdits  # the one way to change the live index
    metrics: Metrics
    limits: Limits
    decision_log: DecisionLog
    key_cache: KeyCache
    quotas: Quotas

    def close(self) -> None:
        self.quotas.close()
        self.decision_log.close()
        self.runtime.close()
        self.engine.dispose()


def open_context(
    settings: Settings,
    encoder: Encoder | None = None,
    metrics: Metrics | None = None,
    embedding_cache: EmbeddingCache | None = None,
) -> ServiceContext:
    """Migrate, seed an empty database, bootstrap LIGHTGUARD_ADMIN_KEY, and prepare (not load) the guard.

    `embedding_cache`: used instead of the one the settings name (`export-seed-vectors` records through its own).

    Raises:
        DatabaseUnavailableError: the database cannot be reached (the service refuses to start without it).
    """
    url = settings.resolved_database_url
    engine = create_db_engine(url)
    try:
        sessions = _prepare_database(settings, url, engine)
    except OperationalError as exc:
        engine.dispose()
        shown = make_url(url).render_as_string(hide_password=True)
        raise DatabaseUnavailableError(
            f"cannot reach the database {shown}: {str(exc.orig).strip()}; "
            "check LIGHTGUARD_DATABASE_URL and that the database server is up"
        ) from exc
    if metrics is None:
        metrics = Metrics()
    # Large requests encode on one thread of their own (the same model: identical vectors), so that a short prompt
    # runs beside a long document on the other core instead of waiting for its slices (docs/reliability.md).
    background = build_encoder(settings, threads=1) if encoder is None else None
    runtime = GuardRuntime(
        encoder or build_encoder(settings),
        settings.workers,
        search_threads=settings.search_threads,
        max_request_cost=settings.max_request_cost,
        slice_runs=settings.slice_runs,
        observer=metrics,
        background_encoder=background,
        batch_consumers=settings.batch_consumers,
    )
    config = apply_operating_point(
        load_guard_config(settings.resolved_scoring_config),
        settings.operating_point,
        settings.resolved_data_dir / "operating_points.json",
    )
    if embedding_cache is None:
        embedding_cache = build_embedding_cache(settings, metrics.embedding_lookup)
    artifacts = IndexArtifacts(
        settings.index_dir, sessions, settings.artifact_keep, metrics.index_loaded, embedding_cache
    )
    following = IndexFollowing(runtime, sessions, artifacts, config)
    edits = IndexEdits(runtime, following, artifacts)
    lifecycle = IndexLifecycle(runtime, sessions, settings.resolved_data_dir, config, artifacts, following, edits)
    metrics.bind_index(lambda: float(_size(runtime)), lambda: float(runtime.version))
    limits = Limits.from_settings(settings)
    return ServiceContext(
        settings,
        engine,
        sessions,
        runtime,
        lifecycle,
        RebuildJobs(lifecycle, sessions),
        following,
        edits,
        metrics,
        limits,
        DecisionLog(sessions, metrics),
        KeyCache(sessions, settings.key_cache_ttl_s),
        Quotas(settings.rate_limit, settings.max_concurrency, settings.rate_limit_storage, metrics),
    )


def _prepare_database(settings: Settings, url: str, engine: Engine) -> sessionmaker[Session]:
    with startup_lock(engine):  # replicas on other hosts starting at the same time: one migrates and seeds
        return _migrate_and_seed(settings, url, engine)


def _migrate_and_seed(settings: Settings, url: str, engine: Engine) -> sessionmaker[Session]:
    if settings.auto_migrate:
        upgrade_database(url, engine)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as session:
        if settings.seed:
            seed_database(session, settings.resolved_data_dir)
        keys = KeyService(session)
        if settings.admin_key is not None and settings.admin_key.get_secret_value():
            created = keys.ensure(settings.admin_key.get_secret_value(), "admin", "LIGHTGUARD_ADMIN_KEY")
            if created is not None:
                log.info("registered LIGHTGUARD_ADMIN_KEY as admin key %s…", created.prefix)
        if keys.open_mode():
            log.warning("no API keys configured: every endpoint is open; %s", CREATE_HINT)
    return sessions


def _size(runtime: GuardRuntime) -> int:
    snap = runtime.snapshot
    return len(snap.guard) if snap is not None else 0


def open_guard(
    settings: Settings, progress: Callable[[int, int], None] | None = None, encoder: Encoder | None = None
) -> Guard:
    """The guard the service would serve: the newest artifact (LIGHTGUARD_HOME's, or a full build's stored in the
    database) caught up with the database, built if none is usable (CLI use)."""
    ctx = open_context(settings, encoder)
    try:
        asyncio.run(ctx.lifecycle.load_or_build(progress))
        return ctx.runtime.require().guard
    finally:
        ctx.close()
