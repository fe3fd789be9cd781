"""Two app instances ("workers") on one database and LIGHTGUARD_HOME: each follows the other's committed changes,
edits catch up before they apply, a rebuild catches up with edits committed while it built, and a start-up loads an
artifact a few versions old by catching it up (no rebuild)."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from service.settings import Settings
from service.usecases.following import IndexFollower
from tests.service.support import COOKING, COOKING_PARAPHRASE, make_settings, rebuild_and_wait, wait_ready
from tests.service.test_index_lifecycle import GatedEncoder

BAKING_EXTRA = "how many eggs go into a pound cake"


@pytest.fixture
def shared(tmp_path: Path, database_url: str) -> Settings:
    """Settings two workers share: one database (each backend), one home; following driven by the test."""
    return make_settings(tmp_path, follow_interval_s=0, database_url=database_url)


def follow(client: TestClient) -> int | None:
    """One follower poll in the app's own event loop."""
    follower = IndexFollower(client.app.state.ctx.following, 1.0)  # type: ignore[attr-defined]
    return client.portal.call(follower.step)  # type: ignore[union-attr]


def version(client: TestClient) -> int:
    return int(client.get("/v1/index").json()["version"])


def state(client: TestClient) -> tuple[dict[int, Any], dict[str, Any]]:
    guard = client.app.state.ctx.runtime.require().guard  # type: ignore[attr-defined]
    return guard.exemplars, guard.labels


def assert_level(a: TestClient, b: TestClient) -> None:
    assert version(a) == version(b)
    assert state(a) == state(b)
    for client in (a, b):
        report = client.get("/v1/index/verify").json()
        assert report["ok"] is True, report["problems"]


def test_a_worker_follows_every_kind_of_edit(shared: Settings) -> None:
    with (
        TestClient(create_app(shared, HashingEncoder())) as a,
        TestClient(create_app(shared, HashingEncoder())) as b,
    ):
        wait_ready(a)
        wait_ready(b)
        assert follow(b) is None  # level from the start
        topic = a.post("/v1/topics", json={"name": "cooking", "examples": COOKING}).json()
        assert b.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()["category"] != "cooking"
        assert follow(b) == topic["index_version"]
        verdict = b.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
        assert verdict["category"] == "cooking" and verdict["index_version"] == topic["index_version"]
        assert_level(a, b)
        steps: list[tuple[str, str, dict[str, Any] | None]] = [
            ("PATCH", f"/v1/topics/{topic['id']}", {"action": "flag", "threshold": 0.4}),
            ("POST", f"/v1/topics/{topic['id']}/examples", {"examples": [BAKING_EXTRA], "allow_examples": ["x y"]}),
            ("POST", "/v1/topics/1/examples", {"examples": ["a new built-in exemplar about weapons"]}),
        ]
        for method, path, body in steps:
            r = a.request(method, path, json=body)
            assert r.status_code < 300, r.text
            assert follow(b) == version(a)
            assert_level(a, b)
        added = a.get(f"/v1/topics/{topic['id']}").json()["examples"]
        assert a.delete(f"/v1/topics/{topic['id']}/examples/{added[-1]['id']}").status_code == 204
        assert a.delete(f"/v1/topics/{topic['id']}").status_code == 204
        assert follow(b) == version(a)  # two changes followed in one catch-up
        assert_level(a, b)
        assert b.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()["category"] != "cooking"


def test_an_edit_catches_up_before_it_applies(shared: Settings) -> None:
    """B never polled, yet edits A's new topic: its edit first brings its guard level (else the example it adds would
    sit on a topic its guard does not have)."""
    with (
        TestClient(create_app(shared, HashingEncoder())) as a,
        TestClient(create_app(shared, HashingEncoder())) as b,
    ):
        wait_ready(a)
        wait_ready(b)
        topic = a.post("/v1/topics", json={"name": "cooking", "examples": COOKING}).json()
        added = b.post(f"/v1/topics/{topic['id']}/examples", json={"examples": [BAKING_EXTRA]})
        assert added.status_code == 201, added.text
        assert added.json()["topic"]["index_version"] == topic["index_version"] + 1
        assert follow(a) == topic["index_version"] + 1
        assert_level(a, b)
        # the same name created through the other worker is a conflict, not a second topic
        again = b.post("/v1/topics", json={"name": "cooking", "examples": COOKING})
        assert again.status_code == 409


def test_a_full_rebuild_is_followed_from_its_artifact(shared: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with (
        TestClient(create_app(shared, HashingEncoder())) as a,
        TestClient(create_app(shared, HashingEncoder())) as b,
    ):
        wait_ready(a)
        wait_ready(b)
        a.post("/v1/topics", json={"name": "cooking", "examples": COOKING})
        rebuilt = rebuild_and_wait(a)
        with caplog.at_level(logging.INFO, logger="service"):
            assert follow(b) == rebuilt["version"]
        assert "artifact loaded" in caplog.text
        guard_a = a.app.state.ctx.runtime.require().guard  # type: ignore[attr-defined]
        guard_b = b.app.state.ctx.runtime.require().guard  # type: ignore[attr-defined]
        assert guard_a.checksum() == guard_b.checksum()  # the same vectors, bit for bit
        assert_level(a, b)


@pytest.mark.parametrize("editor", ["other worker", "same worker"])
def test_a_rebuild_catches_up_with_edits_committed_while_it_built(shared: Settings, editor: str) -> None:
    """Nobody waits for a rebuild: an edit through either worker commits while A builds, and A's new guard takes it
    in (with a version above it) before it serves."""
    gated = GatedEncoder()
    gated.gate.set()
    with (
        TestClient(create_app(shared, gated)) as a,
        TestClient(create_app(shared, HashingEncoder())) as b,
    ):
        wait_ready(a)
        wait_ready(b)
        before = version(a)
        gated.gate.clear()
        gated.entered.clear()
        result: dict[str, Any] = {}
        builder = threading.Thread(target=lambda: result.update(rebuild_and_wait(a)))
        builder.start()
        assert gated.entered.wait(10)  # A is embedding its snapshot; its build row holds version before + 1
        client = b if editor == "other worker" else a
        # one example: the gated encoder blocks only batches of several texts (the build's)
        topic = client.post("/v1/topics", json={"name": "cooking", "examples": COOKING[:1]}).json()
        assert topic["index_version"] == before + 2 and not result  # committed while A is still building
        gated.gate.set()
        builder.join(30)
        assert result["status"] == "succeeded" and result["version"] == before + 3  # above the edit it caught up with
        verdict = a.post("/v1/classify", json={"text": COOKING[0]}).json()
        assert verdict["category"] == "cooking" and verdict["index_version"] == before + 3
        assert follow(b) == before + 3
        assert_level(a, b)


def test_start_up_catches_a_lagging_artifact_up_instead_of_rebuilding(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, follow_interval_s=0)
    with TestClient(create_app(settings, HashingEncoder())) as a:
        wait_ready(a)
        topic = a.post("/v1/topics", json={"name": "cooking", "examples": COOKING}).json()
        # the artifact as of the create: its save runs after the response, so wait for it (copying the folder while a
        # save writes into it raced: the delta's temp file vanished under copytree)
        a.portal.call(a.app.state.ctx.edits.saver.flush)  # type: ignore[attr-defined,union-attr]
        shutil.copytree(settings.index_dir, tmp_path / "older")
        a.post(f"/v1/topics/{topic['id']}/examples", json={"examples": [BAKING_EXTRA]})
        latest = version(a)
    shutil.rmtree(settings.index_dir)
    shutil.copytree(tmp_path / "older", settings.index_dir)  # as if the last save had not happened yet
    with TestClient(create_app(settings, HashingEncoder())) as c:
        wait_ready(c)
        info = c.get("/v1/index").json()
        assert info["version"] == latest
        assert [b["trigger"] for b in info["recent_builds"]].count("startup") == 1  # only the first start built
        assert c.get("/v1/index/verify").json()["ok"] is True
        evidence = c.post("/v1/classify", json={"text": BAKING_EXTRA}).json()["evidence"]
        assert any(e["text"] == BAKING_EXTRA for e in evidence)


def test_the_follower_loop_runs_in_the_app(tmp_path: Path) -> None:
    """With LIGHTGUARD_FOLLOW_INTERVAL_S > 0 the lifespan runs the poll loop: no test-driven step needed."""
    settings = make_settings(tmp_path, follow_interval_s=0.02)
    with (
        TestClient(create_app(settings, HashingEncoder())) as a,
        TestClient(create_app(settings, HashingEncoder())) as b,
    ):
        wait_ready(a)
        wait_ready(b)
        target = a.post("/v1/topics", json={"name": "cooking", "examples": COOKING}).json()["index_version"]
        follower = b.app.state.follower  # type: ignore[attr-defined]
        deadline = 200
        while version(b) < target and deadline:
            deadline -= 1
            threading.Event().wait(0.01)  # polling interval under a bound
        assert version(b) == target and follower.followed >= 1
