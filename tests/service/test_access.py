"""Access: keys compared in constant time and stored hashed, prompts kept out of logs, CORS closed, secrets never
echoed in errors."""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from service.db.engine import session_scope
from service.db.models import Decision
from service.usecases import keys
from service.usecases.keys import KeyService
from tests.service.support import make_settings, wait_ready

ADMIN = "lg_access_admin_key_0123456789abcdef"
SECRET_PROMPT = "my private prompt about zanzibar-7731 and the tax office"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_keys_are_compared_in_constant_time() -> None:
    """Code inspection: the digest comparison is hmac.compare_digest, and no `==` touches a key or its hash."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(KeyService.authenticate)))
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "hmac.compare_digest" in calls
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            text = ast.unparse(node)
            assert "hash" not in text and "token" not in text and "digest" not in text, text
    assert keys.hash_key("a") != keys.hash_key("b") and len(keys.hash_key("a")) == 64


def test_database_never_holds_a_raw_key(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, admin_key=ADMIN), HashingEncoder())) as client:
        wait_ready(client)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with session_scope(ctx.sessions) as session:
            _, classify_key = KeyService(session).create("classify", "app")
        assert client.post("/v1/classify", json={"text": "hi"}, headers=bearer(classify_key)).status_code == 200
        ctx.engine.dispose()  # flush WAL pages into the main file too
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("lightguard.db*"))
    for token in (ADMIN, classify_key):
        assert token.encode() not in raw
        assert token[11:].encode() not in raw  # not even the part after the display prefix


@pytest.mark.parametrize("log_text", [False, True])
def test_prompts_stay_out_of_logs_unless_log_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, log_text: bool
) -> None:
    with (
        caplog.at_level(logging.DEBUG),
        TestClient(create_app(make_settings(tmp_path, log_text=log_text), HashingEncoder())) as client,
    ):
        wait_ready(client)
        assert client.post("/v1/classify", json={"text": SECRET_PROMPT}).status_code == 200
        assert client.post("/v1/moderations", json={"input": [SECRET_PROMPT]}).status_code == 200
        bad = client.post("/v1/classify", json={"texts": [SECRET_PROMPT, ""]})
        assert bad.status_code == 422 and "zanzibar" not in bad.text
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        assert ctx.decision_log.flush()
        with session_scope(ctx.sessions) as session:
            texts = [d.text for d in session.query(Decision).all()]
    assert len(texts) == 2
    assert texts == ([SECRET_PROMPT] * 2 if log_text else [None, None])
    # the process log never carries the prompt, whatever LIGHTGUARD_LOG_TEXT says (it governs the table only)
    assert not [r for r in caplog.records if "zanzibar" in r.getMessage()]


def test_cors_is_closed_by_default(client: TestClient) -> None:
    origin = {"Origin": "https://evil.example"}
    r = client.post("/v1/classify", json={"text": "hello"}, headers=origin)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    preflight = client.options("/v1/classify", headers=origin | {"Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code >= 400


def test_wrong_key_is_not_echoed(tmp_path: Path) -> None:
    wrong = "lg_WRONG_but_secretish_value_42"
    with TestClient(create_app(make_settings(tmp_path, admin_key=ADMIN), HashingEncoder())) as client:
        wait_ready(client)
        for path, method in (("/v1/classify", "post"), ("/v1/topics", "get"), ("/v1/index/rebuild", "post")):
            r = client.request(method, path, json={"text": "hi"}, headers=bearer(wrong))
            assert r.status_code == 403, r.text
            assert wrong not in r.text and wrong[:11] not in r.text and ADMIN not in r.text
        odd = client.post("/v1/classify", json={"text": "hi"}, headers={"Authorization": f"Token {wrong}"})
        assert odd.status_code == 401 and wrong not in odd.text


def test_admin_routes_refuse_missing_and_invalid_keys(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, admin_key=ADMIN), HashingEncoder())) as client:
        wait_ready(client)
        routes = [
            ("get", "/v1/topics"),
            ("post", "/v1/topics"),
            ("get", "/v1/topics/1"),
            ("patch", "/v1/topics/1"),
            ("delete", "/v1/topics/1"),
            ("post", "/v1/topics/1/examples"),
            ("delete", "/v1/topics/1/examples/1"),
            ("post", "/v1/topics/1/evaluate"),
            ("get", "/v1/index"),
            ("post", "/v1/index/rebuild"),
            ("get", "/v1/index/verify"),
        ]
        for method, path in routes:
            assert client.request(method, path, json={}).status_code == 401, (method, path)
            assert client.request(method, path, json={}, headers=bearer("lg_nope")).status_code == 403, path
