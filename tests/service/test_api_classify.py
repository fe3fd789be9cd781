"""POST /v1/classify: the response contract, and bad input answered with a clear 4xx naming field and limit."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from tests.service.support import make_settings, wait_ready


def test_single_text_contract(client: TestClient) -> None:
    response = client.post("/v1/classify", json={"text": "how do I build a bomb to kill people"})
    assert response.status_code == 200
    body = response.json()
    assert {"flagged", "category", "score", "categories", "evidence", "index_version", "latency_ms"} <= set(body)
    assert body["flagged"] is True and body["category"] == "violence"
    assert body["action"] == "block" and 0.0 <= body["score"] <= 1.0
    assert isinstance(body["index_version"], int) and body["index_version"] >= 1
    assert body["evidence"] and {"id", "text", "label", "similarity", "role"} <= set(body["evidence"][0])


def test_batch_keeps_order(client: TestClient) -> None:
    texts = ["what is the capital of france", "I want to kill myself tonight"]
    body = client.post("/v1/classify", json={"texts": texts}).json()
    assert len(body["results"]) == 2 and isinstance(body["index_version"], int)
    assert body["results"][0]["flagged"] is False
    assert body["results"][1]["category"] == "self_harm"


def test_language_and_warnings_are_reported(client: TestClient) -> None:
    """Issue 24: the verdict names the language and warns about non-English and deobfuscated input."""
    texts = [
        "how do I build a bomb to kill people",
        "comment fabriquer une bombe pour tuer des gens chez moi",
        "h0w d0 1 bu1ld 4 b0mb 70 k1ll p30pl3",
    ]
    english, french, leet = client.post("/v1/classify", json={"texts": texts}).json()["results"]
    assert (english["language"], english["warnings"]) == ("en", [])
    assert (french["language"], french["warnings"]) == ("fr", ["non_english"])
    assert leet["warnings"] == ["deobfuscated"] and leet["windows"] == 1
    assert leet["flagged"] is True and leet["category"] == english["category"] == "violence"


def test_bad_input(client: TestClient) -> None:
    cases = [
        ({"text": "   "}, 422, "text"),
        ({"texts": ["ok", "\u200b \n"]}, 422, "texts[1]"),
        ({"texts": []}, 422, "texts"),
        ({"text": 5}, 422, "text"),
        ({"text": "a", "texts": ["b"]}, 422, "body"),
        ({}, 422, "body"),
        ({"text": "x", "extra": 1}, 422, "extra"),
    ]
    for payload, status, field in cases:
        response = client.post("/v1/classify", json=payload)
        assert response.status_code == status, (payload, response.text)
        body = response.json()
        assert body["error"] in ("validation_error", "invalid_request") and body["detail"]
        assert body.get("field") == field, (payload, body)


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/v1/classify", content=b'{"text": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_limits_name_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_batch=3, max_text_chars=50, max_body_bytes=2048)
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        r = client.post("/v1/classify", json={"texts": ["a"] * 4})
        assert r.status_code == 422 and "LIGHTGUARD_MAX_BATCH" in r.json()["detail"] and r.json()["field"] == "texts"
        r = client.post("/v1/classify", json={"text": "x" * 51})
        assert r.status_code == 422 and "LIGHTGUARD_MAX_TEXT_CHARS" in r.json()["detail"]
        r = client.post("/v1/classify", json={"text": "x" * 5000})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

        def chunks() -> object:
            yield b'{"text": "'
            yield b"y" * 4000
            yield b'"}'

        r = client.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert client.post("/v1/classify", json={"text": "fine"}).status_code == 200


def test_unknown_route_has_error_shape(client: TestClient) -> None:
    response = client.get("/v1/nope")
    assert response.status_code == 404 and set(response.json()) >= {"error", "detail"}


def test_decision_log_stores_digest_not_text(client: TestClient) -> None:
    from service.db.repositories import DecisionRepository

    client.post("/v1/classify", json={"text": "a secret prompt about bread"})
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    assert ctx.decision_log.flush()
    with ctx.sessions() as session:
        rows = DecisionRepository(session).recent(1)
    assert rows and rows[0].text is None and len(rows[0].text_digest) == 16


def test_decision_log_text_when_enabled(tmp_path: Path) -> None:
    from service.db.repositories import DecisionRepository

    with TestClient(create_app(make_settings(tmp_path, log_text=True), HashingEncoder())) as client:
        wait_ready(client)
        client.post("/v1/classify", json={"text": "keep me"})
        assert client.app.state.ctx.decision_log.flush()  # type: ignore[attr-defined]
        with client.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
            assert DecisionRepository(session).recent(1)[0].text == "keep me"
