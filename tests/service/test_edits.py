"""The index edit unit of work (service.usecases.edits): what one edit takes, and the version it reports."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from index import read_guard_metadata
from service.db.repositories import IndexLockRepository
from service.serving.interprocess import FileLock
from service.serving.runtime import ReadWriteLock
from tests.service.support import COOKING, wait_ready


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Counts the locks and commits taken while `counting` is set (item "on")."""
    seen: collections.Counter[str] = collections.Counter()

    def counted(cls: type, name: str, key: str) -> None:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if seen["on"]:
                seen[key] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    counted(IndexLockRepository, "acquire", "index lock row")
    counted(ReadWriteLock, "write", "guard write lock")
    counted(FileLock, "hold", "file lock")
    counted(FileLock, "hold_async", "file lock")

    def on_commit(session: Session) -> None:
        if seen["on"]:
            seen["commit"] += 1

    event.listen(Session, "after_commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(Session, "after_commit", on_commit)


class CountingLock:
    """runtime.edit_lock, counted."""

    def __init__(self, lock: Any, seen: collections.Counter[str]) -> None:
        self.lock, self.seen = lock, seen

    async def __aenter__(self) -> None:
        if self.seen["on"]:
            self.seen["edit lock"] += 1
        await self.lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()

    def locked(self) -> bool:
        return bool(self.lock.locked())


def test_each_topic_edit_takes_each_lock_once_and_commits_once(
    client: TestClient, counts: collections.Counter[str]
) -> None:
    """Before the unit of work: the same locks, but two commits (the use case's and the request's). The artifact's
    file lock is the background save's, after the response (the artifact is then at the edit's version)."""
    wait_ready(client)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    runtime = ctx.runtime
    runtime.edit_lock = CountingLock(runtime.edit_lock, counts)
    saver = ctx.edits.saver
    request_save, requested = saver.request, []
    saver.request = requested.append  # saved below, uncounted
    ids: dict[str, int] = {}
    edits: list[tuple[str, Callable[[], Any]]] = [
        ("create", lambda: client.post("/v1/topics", json={"name": "cooking", "examples": COOKING})),
        ("add", lambda: client.post(f"/v1/topics/{ids['topic']}/examples", json={"examples": ["knead it twice"]})),
        ("update", lambda: client.patch(f"/v1/topics/{ids['topic']}", json={"action": "flag"})),
        ("remove", lambda: client.delete(f"/v1/topics/{ids['topic']}/examples/{ids['example']}")),
        ("delete", lambda: client.delete(f"/v1/topics/{ids['topic']}")),
    ]
    for name, send in edits:
        before = client.get("/v1/index").json()["version"]
        counts.clear()
        counts["on"] = 1
        r = send()
        counts["on"] = 0
        assert r.status_code < 300, (name, r.text)
        if name == "create":
            ids["topic"] = r.json()["id"]
            assert r.json()["index_version"] == before + 1
        if name == "add":
            ids["example"] = r.json()["added"][0]["id"]
            assert r.json()["topic"]["index_version"] == before + 1
        taken = {k: v for k, v in counts.items() if k != "on"}
        expected = {"edit lock": 1, "index lock row": 1, "guard write lock": 1, "commit": 1}
        assert taken == expected, name
        assert client.get("/v1/index").json()["version"] == before + 1
        assert requested == [before + 1], name
        portal = client.portal
        assert portal is not None
        portal.call(request_save, requested.pop())  # on the event loop, as the edit calls it
        portal.call(ctx.edits.flush)
        assert read_guard_metadata(ctx.settings.index_dir)["version"] == before + 1


def test_examples_are_encoded_before_the_edit_takes_its_locks(client: TestClient) -> None:
    """Encoding is most of an add's work: other edits (and the artifact's capture) must not wait for it."""
    runtime = client.app.state.ctx.runtime  # type: ignore[attr-defined]
    embed = runtime.embed
    held: list[bool] = []

    async def watched(texts: Any) -> Any:
        held.append(runtime.edit_lock.locked())
        return await embed(texts)

    runtime.embed = watched
    r = client.post("/v1/topics", json={"name": "cooking", "examples": COOKING})
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/topics/{r.json()['id']}/examples", json={"examples": ["knead it twice"]})
    assert r.status_code == 201, r.text
    assert held == [False, False]
