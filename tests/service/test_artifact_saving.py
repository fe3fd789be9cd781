"""The background artifact save after edits (service.usecases.artifact_saving): coalesced, at the newest version,
and never waiting for the edit lock."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from index import read_guard_metadata
from service.usecases.artifact_saving import ArtifactSaver
from tests.service.support import COOKING, wait_ready


def _portal(client: TestClient) -> Any:
    assert client.portal is not None
    return client.portal


def test_edits_in_a_burst_are_saved_once_more_at_the_newest_version(client: TestClient) -> None:
    wait_ready(client)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    saves: list[int] = []
    write_image = ctx.edits.saver.artifacts.write_image

    def counted(image: Any, digest: str, version: int) -> None:
        saves.append(version)
        write_image(image, digest, version)

    ctx.edits.saver.artifacts.write_image = counted
    r = client.post("/v1/topics", json={"name": "cooking", "examples": COOKING})
    assert r.status_code == 201, r.text
    topic = r.json()["id"]
    for text in ("knead it twice", "proof it overnight", "bake it hot"):
        assert client.post(f"/v1/topics/{topic}/examples", json={"examples": [text]}).status_code == 201
    _portal(client).call(ctx.edits.flush)
    version = client.get("/v1/index").json()["version"]
    assert saves[-1] == version == read_guard_metadata(ctx.settings.index_dir)["version"]
    assert len(saves) <= 4 and saves == sorted(saves)


def test_a_save_does_not_wait_for_the_edit_lock(client: TestClient) -> None:
    """A save captures the guard under the runtime's read lock: an edit holding the edit lock (encoding, reading
    the database) does not hold it up, and it does not hold up the next edit for longer than the capture."""
    wait_ready(client)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    saver: ArtifactSaver = ctx.edits.saver

    async def save_while_an_edit_holds_the_lock() -> int:
        async with ctx.runtime.edit_lock:
            saver.request(ctx.runtime.version, {})
            await asyncio.wait_for(saver.flush(), timeout=60)
        return int(ctx.runtime.version)

    version = _portal(client).call(save_while_an_edit_holds_the_lock)
    assert read_guard_metadata(ctx.settings.index_dir)["version"] == version
