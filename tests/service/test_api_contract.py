"""The HTTP contract as schemathesis checks it (benchmarks/serving/fuzz_api.py): one regression test per finding it
made (the bounded run against a live server is tests/benchmarks/test_fuzz_api.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from index import HashingEncoder
from service.app import create_app
from service.db.repositories import TopicRepository
from service.usecases.limits import has_content
from tests.service.support import COOKING, create_cooking, make_settings, wait_ready


@pytest.fixture
def any_db(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """A client on each backend in turn."""
    with TestClient(create_app(make_settings(tmp_path, database_url=database_url), HashingEncoder())) as client:
        wait_ready(client)
        yield client


def aware(stamp: str) -> bool:
    return datetime.fromisoformat(stamp).tzinfo is not None


def test_timestamps_carry_a_utc_offset(any_db: TestClient) -> None:
    """SQLite read timestamps back without a zone: `2026-11-28T07:35:49` is not an RFC 3339 date-time."""
    topic_id = create_cooking(any_db)["id"]
    read_back = any_db.get(f"/v1/topics/{topic_id}").json()  # a fresh session: values come from the database
    stamps = [read_back["created_at"], read_back["updated_at"], read_back["examples"][0]["created_at"]]
    stamps += [b["started_at"] for b in any_db.get("/v1/index").json()["recent_builds"]]
    assert stamps and all(aware(s) for s in stamps), stamps


def test_ids_beyond_the_database_integer_are_422(any_db: TestClient) -> None:
    """A 24-digit topic id reached the SQLite driver (OverflowError, a 500); PostgreSQL ids are 32-bit."""
    for method, path in [
        ("GET", f"/v1/topics/{2**78}"),
        ("PATCH", f"/v1/topics/{2**31}"),
        ("DELETE", f"/v1/topics/{2**63}"),
        ("DELETE", f"/v1/topics/1/examples/{2**40}"),
        ("GET", "/v1/topics/0"),
    ]:
        r = any_db.request(method, path, json={"enabled": True} if method == "PATCH" else None)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", (path, r.text)
    assert any_db.get(f"/v1/topics/{2**31 - 1}").status_code == 404


def test_nul_characters_in_stored_text_are_422(any_db: TestClient) -> None:
    """PostgreSQL cannot store NUL in a text column: the driver's data error became a 503 `database_unavailable`."""
    bad = [
        ("POST", "/v1/topics", {"name": "nul", "examples": ["bake \x00 bread"]}),
        ("POST", "/v1/topics", {"name": "nul", "examples": COOKING, "description": "a\x00b"}),
        ("PATCH", "/v1/topics/1", {"description": "\x00"}),
        ("POST", "/v1/topics/1/examples", {"allow_examples": ["x\x00"]}),
    ]
    for method, path, body in bad:
        r = any_db.request(method, path, json=body)
        assert r.status_code == 422 and "NUL" in r.json()["detail"], (body, r.text)
    # scored, never stored (unless LIGHTGUARD_LOG_TEXT): accepted, the normaliser drops control characters
    assert any_db.post("/v1/classify", json={"text": "how do I \x00 bake bread"}).status_code == 200


def test_a_405_lists_every_method_of_the_resource(any_db: TestClient) -> None:
    """Starlette named only the first matching route's methods (`Allow: GET` for a path that takes PATCH, DELETE)."""
    r = any_db.request("OPTIONS", "/v1/topics/1")
    assert r.status_code == 405
    assert {"GET", "PATCH", "DELETE"} <= {m.strip() for m in r.headers["allow"].split(",")}, r.headers["allow"]


def test_request_types_are_strict_and_nulls_are_refused(any_db: TestClient) -> None:
    """`{"threshold": false}` was accepted as 0.0; `{"text": ..., "texts": null}` against a schema without null."""
    for method, path, body in [
        ("PATCH", "/v1/topics/1", {"threshold": False}),
        ("PATCH", "/v1/topics/1", {"enabled": 1}),
        ("POST", "/v1/classify", {"text": "hello", "texts": None}),
        ("POST", "/v1/classify", {"text": None, "texts": ["hello"]}),
        ("POST", "/v1/topics/1/evaluate", {"examples": [{"text": "a", "match": True}], "texts": ["a"]}),
    ]:
        r = any_db.request(method, path, json=body)
        assert r.status_code == 422, (body, r.text)
    assert any_db.patch("/v1/topics/1", json={"threshold": 1}).json()["threshold"] == 1.0  # an int is a number


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_error_status_is_documented_with_its_body(any_db: TestClient) -> None:
    """422 was documented as FastAPI's `HTTPValidationError`, 404/409/400 not at all (schemathesis ST103/ST108)."""
    spec = any_db.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    for path, method, op in operations(spec):
        if not path.startswith("/v1/"):
            continue
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                name = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                # ErrorRead, or a body with its fields and more (409 of a rebuild names the running build)
                extends = schemas[name]["properties"].items() >= schemas["ErrorRead"]["properties"].items()
                assert name == "ErrorRead" or extends, (method, path, code)
        assert {"401", "403", "422", "503"} <= set(op["responses"]), (method, path)
        if "{topic_id}" in path:
            assert "404" in op["responses"], (method, path)
        if "requestBody" in op:
            assert "400" in op["responses"] or path.startswith("/v1/index"), (method, path)


def test_links_lead_from_a_created_topic_to_its_operations(any_db: TestClient) -> None:
    """Without links schemathesis guessed `example_id` from the topic's id and reported the new example missing."""
    spec = any_db.get("/openapi.json").json()
    created = create_cooking(any_db)
    links = spec["paths"]["/v1/topics"]["post"]["responses"]["201"]["links"]
    for link in links.values():
        path, method = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
        path = path.replace("~1", "/").replace("~0", "~")
        assert method in spec["paths"][path], link
        assert link["parameters"] == {"topic_id": "$response.body#/id"}
    added = any_db.post(f"/v1/topics/{created['id']}/examples", json={"examples": ["knead the dough twice"]}).json()
    remove = spec["paths"]["/v1/topics/{topic_id}/examples"]["post"]["responses"]["201"]["links"]["RemoveExample"]
    pointers = {name: value.removeprefix("$response.body#") for name, value in remove["parameters"].items()}
    values = {name: resolve(added, pointer) for name, pointer in pointers.items()}
    assert any_db.delete(f"/v1/topics/{values['topic_id']}/examples/{values['example_id']}").status_code == 204


def resolve(document: Any, pointer: str) -> Any:
    for part in pointer.strip("/").split("/"):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def test_a_database_error_that_is_not_an_outage_is_a_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every driver error used to answer 503 `database_unavailable` + Retry-After, hiding bugs as outages."""

    def broken(self: TopicRepository) -> list[object]:
        raise IntegrityError("SELECT", {}, Exception("a violated constraint"))

    with TestClient(create_app(make_settings(tmp_path), HashingEncoder()), raise_server_exceptions=False) as client:
        wait_ready(client)
        monkeypatch.setattr(TopicRepository, "find", broken)
        r = client.get("/v1/topics")
        assert r.status_code == 500 and r.json()["error"] == "internal_error", r.text
        assert "retry-after" not in r.headers and "constraint" not in r.text


# Texts that normalise to nothing: schemathesis 4.32 sent each of these (valid under the old hand-written pattern) to
# /v1/moderations, topic examples and /v1/topics/{id}/examples and got 422.
BLANK = ["\u200b\u2060", "\x01\x7f", "\ud800", "\ue000", "\U000e0001", "\ufffe", "\u3164 \u115f", " \t\n"]


def test_the_schema_states_which_texts_have_content(client: TestClient) -> None:
    """ContentText's pattern matches a text exactly when the use cases accept it (the rule and the pattern are one)."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    content = re.compile(schemas["ContentText"]["pattern"])
    stored = re.compile(schemas["StoredContentText"]["pattern"])
    for text in [*BLANK, "a", "!", "é", "\u0661", "\U0001f600", "x\x00"]:
        assert bool(content.search(text)) == has_content(text), repr(text)
        assert bool(stored.search(text)) == (has_content(text) and "\x00" not in text), repr(text)
    for code in range(0, 0x110000, 97):  # a sample of every plane
        assert bool(content.search(chr(code))) == has_content(chr(code)), hex(code)
    refs = {
        "ModerationTextPart": schemas["ModerationTextPart"]["properties"]["text"],
        "TopicCreate": schemas["TopicCreate"]["properties"]["examples"]["items"],
        "ExamplesCreate": schemas["ExamplesCreate"]["properties"]["allow_examples"]["items"],
        "TopicEvaluate": schemas["TopicEvaluate"]["properties"]["texts"]["items"],
    }
    assert all("ContentText" in str(ref) for ref in refs.values()), refs


@pytest.mark.parametrize("text", BLANK)
def test_a_text_the_schema_refuses_is_refused(client: TestClient, text: str) -> None:
    topic = create_cooking(client)

    def post(url: str, body: dict[str, Any]) -> int:
        # JSON escapes (\ud800): a lone surrogate has no UTF-8 form, but a JSON string may hold one
        sent = json.dumps(body).encode()
        return client.post(url, content=sent, headers={"Content-Type": "application/json"}).status_code

    assert post("/v1/moderations", {"input": text}) == 422
    assert post(f"/v1/topics/{topic['id']}/examples", {"examples": [text]}) == 422
    assert post("/v1/topics", {"name": "blank", "examples": ["bake bread", text]}) == 422


def test_an_empty_key_update_is_refused_and_the_schema_says_so(client: TestClient) -> None:
    admin = client.post("/v1/keys", json={"role": "admin"}).json()  # the first key turns authentication on
    auth = {"Authorization": f"Bearer {admin['token']}"}
    assert client.patch(f"/v1/keys/{admin['id']}", json={}, headers=auth).status_code == 422
    assert client.get("/openapi.json").json()["components"]["schemas"]["KeyUpdate"]["minProperties"] == 1
