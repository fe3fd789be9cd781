"""API keys: open without keys; with keys 401 when missing, 403 when wrong, revoked or of too small a role."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from service.db import session_scope
from service.models import ApiKey
from service.usecases.keys import KeyService, hash_key
from tests.service.support import make_settings, wait_ready

ADMIN = "lg_test_admin_key_0123456789"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_open_without_keys(client: TestClient) -> None:
    assert client.post("/v1/classify", json={"text": "hello"}).status_code == 200
    assert client.get("/v1/topics").status_code == 200


def test_keys_and_roles(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, admin_key=ADMIN), HashingEncoder())) as client:
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
