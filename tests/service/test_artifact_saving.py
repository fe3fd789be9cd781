"""The background artifact save after edits (service.usecases.artifact_saving): coalesced, at the newest version,
and never waiting for the edit lock."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi.testclient import TestClient

from index import HashingEncoder, read_guard_metadata
from service.app import create_app
from service.settings import Settings
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


def test_shutdown_waits_for_the_save_an_edit_requested(settings: Settings) -> None:
    """Stopping right after an edit finishes the artifact save it requested before the guard is closed (else the
    next start loads the artifact one edit behind and replays the edit from the change log)."""
    shutting_down = threading.Event()
    events: list[str] = []
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        write_image, close_rebuilds, close_runtime = (
            ctx.edits.saver.artifacts.write_image,
            ctx.rebuilds.aclose,
            ctx.runtime.aclose,
        )

        def held_write(image: Any, digest: str, version: int) -> None:
            shutting_down.wait(timeout=60)  # the save is still running when the app begins to stop
            write_image(image, digest, version)
            events.append(f"saved {version}")

        async def rebuilds_aclose() -> None:
            shutting_down.set()
            await close_rebuilds()

        async def runtime_aclose() -> None:
            events.append("runtime closed")
            await close_runtime()

        ctx.edits.saver.artifacts.write_image = held_write
        ctx.rebuilds.aclose, ctx.runtime.aclose = rebuilds_aclose, runtime_aclose
        r = client.post("/v1/topics", json={"name": "cooking", "examples": COOKING})
        assert r.status_code == 201, r.text
        version = client.get("/v1/index").json()["version"]
    assert events == [f"saved {version}", "runtime closed"]
    assert read_guard_metadata(settings.index_dir)["version"] == version
