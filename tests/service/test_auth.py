"""API keys: open without keys; with keys 401 when missing, 403 when wrong, revoked or of too small a role."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError

from index import HashingEncoder
from service.app import create_app
from service.db.engine import create_db_engine, make_sessionmaker, session_scope, upgrade_database
from service.db.models import ApiKey
from service.errors import PermissionDeniedError
from service.usecases.keys import KeyCache, KeyIdentity, KeyService, hash_key
from tests.service.support import make_settings, wait_ready

ADMIN = "lg_test_admin_key_0123456789"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_open_without_keys(client: TestClient) -> None:
    assert client.post("/v1/classify", json={"text": "hello"}).status_code == 200
    assert client.get("/v1/topics").status_code == 200


def test_keys_and_roles(tmp_path: Path) -> None:
    # TTL 0: every classify request reads the keys, so the revocation below must bite at once (the cached
    # behaviour is tested on KeyCache with a fake clock further down)
    settings = make_settings(tmp_path, admin_key=ADMIN, key_cache_ttl_s=0)
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with session_scope(ctx.sessions) as session:
            stored = session.query(ApiKey).one()
            assert stored.key_hash == hash_key(ADMIN) and ADMIN not in (stored.prefix + stored.key_hash)
            classify_key = KeyService(session).create("classify", "app")[1]
        assert classify_key.startswith("lg_")

        missing = client.post("/v1/classify", json={"text": "hello"})
        assert missing.status_code == 401 and "lightguard keys create" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/v1/classify", json={"text": "hello"}, headers=bearer("lg_nope"))
        assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
        malformed = client.post("/v1/classify", json={"text": "hello"}, headers={"Authorization": "Basic abc"})
        assert malformed.status_code == 401
        assert client.post("/v1/classify", json={"text": "hello"}, headers=bearer(classify_key)).status_code == 200
        assert client.post("/v1/moderations", json={"input": "hello"}, headers=bearer(classify_key)).status_code == 200
        assert client.post("/v1/classify", json={"text": "hello"}, headers=bearer(ADMIN)).status_code == 200

        denied = client.post("/v1/topics", json={"name": "x", "examples": ["a b"]}, headers=bearer(classify_key))
        assert denied.status_code == 403 and "admin" in denied.json()["detail"]
        assert client.post("/v1/index/rebuild").status_code == 401
        assert client.get("/v1/topics", headers=bearer(ADMIN)).status_code == 200

        with session_scope(ctx.sessions) as session:
            keys = KeyService(session)
            app_key = next(k for k in keys.all_keys() if k.role == "classify")
            keys.revoke(app_key.id)
        assert client.post("/v1/classify", json={"text": "hi"}, headers=bearer(classify_key)).status_code == 403
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_key_cache_serves_from_memory_and_follows_revocation_within_its_ttl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    engine = create_db_engine(url)
    upgrade_database(url, engine)
    sessions = make_sessionmaker(engine)
    clock = FakeClock()
    cache = KeyCache(sessions, ttl_s=1.0, miss_refresh_s=0.25, clock=clock)
    reads: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: reads.append(args[2]))

    assert asyncio.run(cache.authenticate(None, "classify")) is None  # no keys: open mode
    with session_scope(sessions) as session:
        KeyService(session).create("admin", "ops")  # stays active: revoking the other one must not open the service
        key, token = KeyService(session).create("classify", "app")
    # created a moment ago: the unknown token forces a reload (rate-limited), so it works at once
    clock.now += 0.5
    assert asyncio.run(cache.authenticate(f"Bearer {token}", "classify")) == KeyIdentity(key.id, "classify")
    reads.clear()
    for _ in range(5):
        assert asyncio.run(cache.authenticate(f"Bearer {token}", "classify")) is not None
    assert reads == []  # served from memory: no query per request
    with pytest.raises(PermissionDeniedError, match="admin"):
        asyncio.run(cache.authenticate(f"Bearer {token}", "admin"))

    with session_scope(sessions) as session:
        KeyService(session).revoke(key.id)
    clock.now += 0.9
    assert asyncio.run(cache.authenticate(f"Bearer {token}", "classify")) is not None  # within the TTL
    clock.now += 0.2
    with pytest.raises(PermissionDeniedError, match="unknown or revoked"):
        asyncio.run(cache.authenticate(f"Bearer {token}", "classify"))  # older than the TTL: reloaded, refused
    engine.dispose()


def test_key_cache_rate_limits_reloads_on_unknown_tokens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    engine = create_db_engine(url)
    upgrade_database(url, engine)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as session:
        KeyService(session).create("classify", "app")
    clock = FakeClock()
    cache = KeyCache(sessions, ttl_s=60.0, miss_refresh_s=0.25, clock=clock)
    reads: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: reads.append(args[2]))
    for _ in range(50):
        with pytest.raises(PermissionDeniedError):
            asyncio.run(cache.authenticate("Bearer lg_not_a_key_at_all", "classify"))
    assert len(reads) == 1  # the first load only: a flood of bad tokens does not reach the database
    clock.now += 0.3
    with pytest.raises(PermissionDeniedError):
        asyncio.run(cache.authenticate("Bearer lg_not_a_key_at_all", "classify"))
    assert len(reads) == 2
    engine.dispose()


def test_key_cache_reload_without_a_database_raises(tmp_path: Path) -> None:
    sessions = make_sessionmaker(create_engine("postgresql+psycopg://lg:pw@127.0.0.1:1/gone"))
    with pytest.raises(OperationalError):
        asyncio.run(KeyCache(sessions).authenticate("Bearer lg_x", "classify"))
