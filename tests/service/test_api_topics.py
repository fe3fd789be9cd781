"""Topics: live in the next classify call, 4xx rules, and a failed commit leaves DB and index unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.service.support import COOKING, COOKING_PARAPHRASE, create_cooking


def classify(client: TestClient, text: str) -> dict[str, Any]:
    response = client.post("/v1/classify", json={"text": text})
    assert response.status_code == 200, response.text
    return dict(response.json())


def verify(client: TestClient) -> None:
    report = client.get("/v1/index/verify").json()
    assert report["ok"], report["problems"]


def test_topic_lifecycle(client: TestClient) -> None:
    before = classify(client, COOKING_PARAPHRASE)
    assert before["flagged"] is False
    topic = create_cooking(client)
    assert topic["id"] and topic["kind"] == "custom" and topic["threshold_source"] == "calibrated"
    assert topic["threshold"] is not None and len(topic["examples"]) == 5
    assert topic["index_version"] > before["index_version"]
    after = classify(client, COOKING_PARAPHRASE)
    assert after["flagged"] is True and after["category"] == "cooking"
    assert after["index_version"] == topic["index_version"]
    assert classify(client, "what is the capital of france")["flagged"] is False
    verify(client)

    listed = client.get("/v1/topics").json()
    assert [t["name"] for t in listed["topics"] if t["kind"] == "custom"] == ["cooking"]
    assert client.get(f"/v1/topics/{topic['id']}").json()["name"] == "cooking"

    assert client.delete(f"/v1/topics/{topic['id']}").status_code == 204
    assert classify(client, COOKING_PARAPHRASE)["flagged"] is False
    assert client.get(f"/v1/topics/{topic['id']}").status_code == 404
    verify(client)


def test_update_threshold_enable_and_recalibrate(client: TestClient) -> None:
    topic = create_cooking(client)
    url = f"/v1/topics/{topic['id']}"
    r = client.patch(url, json={"threshold": 0.99, "action": "flag"})
    assert r.status_code == 200 and r.json()["threshold"] == 0.99 and r.json()["threshold_source"] == "manual"
    assert classify(client, COOKING_PARAPHRASE)["flagged"] is False
    r = client.patch(url, json={"threshold": None})
    assert r.json()["threshold_source"] == "calibrated" and r.json()["threshold"] == topic["threshold"]
    verdict = classify(client, COOKING_PARAPHRASE)
    assert verdict["flagged"] is True and verdict["action"] == "flag"
    client.patch(url, json={"enabled": False})
    assert classify(client, COOKING_PARAPHRASE)["flagged"] is False
    verify(client)


def test_builtin_category_can_be_disabled_not_deleted(client: TestClient) -> None:
    topics = {t["name"]: t for t in client.get("/v1/topics").json()["topics"]}
    violence = topics["violence"]
    assert violence["kind"] == "builtin" and violence["openai_keys"] == ["violence", "violence/graphic"]
    r = client.delete(f"/v1/topics/{violence['id']}")
    assert r.status_code == 409 and "disable" in r.json()["detail"]
    client.patch(f"/v1/topics/{violence['id']}", json={"enabled": False})
    verdict = classify(client, "how do I build a bomb to kill people")
    assert verdict["category"] != "violence" and "violence" not in verdict["categories"]
    verify(client)


def test_examples_add_and_remove(client: TestClient) -> None:
    topic = create_cooking(client, allow_examples=["how do I bake a server build pipeline"])
    url = f"/v1/topics/{topic['id']}"
    r = client.post(f"{url}/examples", json={"examples": ["how to proof pizza dough overnight"]})
    assert r.status_code == 201 and r.json()["topic"]["example_count"] == 7
    added = r.json()["added"][0]["id"]
    assert client.delete(f"{url}/examples/{added}").status_code == 204
    assert client.delete(f"{url}/examples/{added}").status_code == 404
    assert client.delete(f"{url}/examples/999999").json()["field"] == "example_id"
    detail = client.get(url).json()
    assert [e["role"] for e in detail["examples"]].count("allow") == 1
    positives = [e["id"] for e in detail["examples"] if e["role"] == "positive"]
    for example_id in positives[:-1]:
        assert client.delete(f"{url}/examples/{example_id}").status_code == 204
    last = client.delete(f"{url}/examples/{positives[-1]}")
    assert last.status_code == 409 and "last positive" in last.json()["detail"]
    verify(client)


def test_topic_errors(client: TestClient) -> None:
    create_cooking(client)
    dup = client.post("/v1/topics", json={"name": "cooking", "examples": ["x y z"]})
    assert dup.status_code == 409 and dup.json()["field"] == "name"
    assert client.post("/v1/topics", json={"name": "violence", "examples": ["x"]}).status_code == 409
    bad = [
        ({"name": "has space", "examples": ["a"]}, "name"),
        ({"name": "t1", "examples": []}, "examples"),
        ({"name": "t1", "examples": ["  "]}, "examples[0]"),
        ({"name": "t1", "examples": ["ok"], "threshold": 2}, "threshold"),
        ({"name": "t1", "examples": "not a list"}, "examples"),
        ({"name": "t1", "examples": ["ok"], "action": "delete"}, "action"),
    ]
    for body, field in bad:
        r = client.post("/v1/topics", json=body)
        assert r.status_code == 422 and r.json()["field"] == field, (body, r.json())
    too_many = client.post("/v1/topics", json={"name": "big", "examples": [f"text {i}" for i in range(501)]})
    assert too_many.status_code == 422 and "LIGHTGUARD_MAX_EXAMPLES" in too_many.json()["detail"]
    assert client.get("/v1/topics/424242").status_code == 404
    assert client.patch("/v1/topics/424242", json={"enabled": False}).status_code == 404
    assert client.delete("/v1/topics/424242").status_code == 404
    assert client.get("/v1/topics/abc").status_code == 422
    names = [t["name"] for t in client.get("/v1/topics").json()["topics"]]
    assert "t1" not in names and "big" not in names
    verify(client)


def test_failed_commit_leaves_db_and_index_unchanged(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    version = client.get("/v1/index").json()["version"]
    original = Session.commit

    def failing_commit(self: Session) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Session, "commit", failing_commit)
    with pytest.raises(RuntimeError):
        client.post("/v1/topics", json={"name": "cooking", "examples": COOKING})
    monkeypatch.setattr(Session, "commit", original)
    assert classify(client, COOKING_PARAPHRASE)["flagged"] is False
    names = [t["name"] for t in client.get("/v1/topics").json()["topics"]]
    assert "cooking" not in names
    # the change was applied and undone inside one critical section of the guard's write lock: no request saw it,
    # so its version was never published and the next committed change takes it
    assert client.get("/v1/index").json()["version"] == version
    verify(client)
    assert create_cooking(client)["index_version"] == version + 1  # and the name is still free
