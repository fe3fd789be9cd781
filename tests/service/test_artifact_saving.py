"""The background artifact save after edits (service.usecases.artifact_saving): coalesced, at the newest version,
never waiting for the edit lock, and only the edits' delta from the home's full artifact."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from index import HashingEncoder, read_guard_metadata
from index.artifact_delta import DELTA_FILE
from service.app import create_app
from service.db.artifacts import IndexArtifactRepository
from service.db.engine import create_db_engine, make_sessionmaker
from service.settings import Settings
from service.usecases.artifact_saving import ArtifactSaver
from tests.conftest import CountingEncoder
from tests.service.support import COOKING, COOKING_PARAPHRASE, create_cooking, drop_stored_artifacts, wait_ready


def _portal(client: TestClient) -> Any:
    assert client.portal is not None
    return client.portal


def test_edits_in_a_burst_are_saved_once_more_at_the_newest_version(client: TestClient) -> None:
    wait_ready(client)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    saves: list[int] = []
    write_delta = ctx.edits.saver.artifacts.write_delta

    def counted(delta: Any, version: int) -> str:
        saves.append(version)
        return str(write_delta(delta, version))

    ctx.edits.saver.artifacts.write_delta = counted
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
            saver.request(ctx.runtime.version)
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
        write_delta, close_rebuilds, close_runtime = (
            ctx.edits.saver.artifacts.write_delta,
            ctx.rebuilds.aclose,
            ctx.runtime.aclose,
        )

        def held_write(delta: Any, version: int) -> str:
            shutting_down.wait(timeout=60)  # the save is still running when the app begins to stop
            written = str(write_delta(delta, version))
            events.append(f"{written} {version}")
            return written

        async def rebuilds_aclose() -> None:
            shutting_down.set()
            await close_rebuilds()

        async def runtime_aclose() -> None:
            events.append("runtime closed")
            await close_runtime()

        ctx.edits.saver.artifacts.write_delta = held_write
        ctx.rebuilds.aclose, ctx.runtime.aclose = rebuilds_aclose, runtime_aclose
        r = client.post("/v1/topics", json={"name": "cooking", "examples": COOKING})
        assert r.status_code == 201, r.text
        version = client.get("/v1/index").json()["version"]
    assert events == [f"saved {version}", "runtime closed"]
    assert read_guard_metadata(settings.index_dir)["version"] == version
    assert ctx.edits.saver.saves["delta"] == 1


def _held_step_and_engine_disposal(
    monkeypatch: pytest.MonkeyPatch, owner: type, method: str, done: str
) -> tuple[threading.Event, list[str]]:
    """Make `owner.method` (a database step) still run half a second after it started, and record, in order, the
    step ending (`done`, formatted with its arguments) and the database engine being disposed."""
    import service.context as context

    started, events = threading.Event(), []
    step, close = getattr(owner, method), context.ServiceContext.close

    def held_step(self: object, *args: object) -> object:
        started.set()
        time.sleep(0.5)  # still running when the app begins to stop
        result = step(self, *args)
        events.append(done.format(*args))
        return result

    def recorded_close(self: context.ServiceContext) -> None:
        events.append("engine disposed")
        close(self)

    monkeypatch.setattr(owner, method, held_step)
    monkeypatch.setattr(context.ServiceContext, "close", recorded_close)
    return started, events


def test_shutdown_waits_for_a_finished_builds_artifact_to_reach_the_database(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz turns 200 once the start-up build serves; its artifact is stored in the database after that. A server
    stopped meanwhile (a test that ends at once) cancelled the store and disposed the engine under the storing
    thread: its connection leaked (PostgreSQL's ResourceWarning in CI) and the artifact was cut off."""
    from service.usecases.artifacts import IndexArtifacts

    storing, events = _held_step_and_engine_disposal(monkeypatch, IndexArtifacts, "publish", "published {0}")
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        assert storing.wait(timeout=30)
        version = client.get("/v1/index").json()["version"]
    assert events == [f"published {version}", "engine disposed"]
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            assert IndexArtifactRepository(session).newest_version() == version  # stored whole
    finally:
        engine.dispose()


def test_a_server_stopped_during_its_first_database_step_waits_for_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every database step of the start-up load runs to its end before the engine is disposed, not only the
    artifact store: stopped a moment after start, the server cancelled the load and disposed the engine under the
    thread that was marking dead builds failed (a connection left open; PostgreSQL warned in a later test)."""
    from service.usecases.lifecycle import IndexLifecycle

    started, events = _held_step_and_engine_disposal(
        monkeypatch, IndexLifecycle, "_fail_interrupted", "dead builds checked"
    )
    with TestClient(create_app(settings, HashingEncoder())) as client:
        assert started.wait(timeout=30)
        assert client.get("/readyz").status_code == 503  # stopped before it was ever ready
    assert events == ["dead builds checked", "engine disposed"]


def test_an_edit_saves_its_delta_not_the_full_artifact(client: TestClient) -> None:
    """The full artifact (the store's serialisation, every exemplar) is written by full builds; an edit adds only
    a small delta beside it."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    manifest = ctx.settings.index_dir / "guard.json"
    full = manifest.stat()
    create_cooking(client)
    _portal(client).call(ctx.edits.flush)
    assert ctx.edits.saver.saves == {"delta": 1, "full": 0, "superseded": 0, "failed": 0}
    assert manifest.stat().st_ino == full.st_ino and manifest.stat().st_mtime_ns == full.st_mtime_ns
    version = client.get("/v1/index").json()["version"]
    assert read_guard_metadata(ctx.settings.index_dir) == {"version": version, "model_id": "hashing-64"}
    assert (ctx.settings.index_dir / DELTA_FILE).stat().st_size < full.st_size


def test_a_delta_the_disk_refuses_is_counted_as_failed_not_saved(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No full save is tried instead (the disk is the problem) and the artifact on disk stays the old version: the
    change log, not the artifact, carries the edit to the next start (test_follower.py)."""
    import service.usecases.artifacts as artifacts

    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    before = read_guard_metadata(ctx.settings.index_dir)

    def full_disk(*args: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts, "write_guard_delta", full_disk)
    create_cooking(client)
    _portal(client).call(ctx.edits.flush)
    assert ctx.edits.saver.saves == {"delta": 0, "full": 0, "superseded": 0, "failed": 1}
    assert read_guard_metadata(ctx.settings.index_dir) == before
    assert not (ctx.settings.index_dir / DELTA_FILE).exists()


def test_a_start_loads_the_full_artifact_and_its_delta_without_embedding(settings: Settings) -> None:
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        topic = create_cooking(client)
        client.post(f"/v1/topics/{topic['id']}/examples", json={"examples": ["knead it twice"]})
        version = client.get("/v1/index").json()["version"]
    encoder = CountingEncoder()
    with TestClient(create_app(settings, encoder)) as client:
        wait_ready(client)
        assert encoder.texts == 0  # nothing replayed from the change log: the delta held the examples' vectors
        assert client.get("/v1/index").json()["version"] == version
        assert client.get("/v1/index/verify").json()["ok"] is True
        assert client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()["category"] == "cooking"
        assert 'lightguard_index_loaded_from_total{source="home"} 1.0' in client.get("/metrics").text


def test_a_corrupt_delta_is_ignored_and_the_change_log_replayed(settings: Settings) -> None:
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        create_cooking(client)
        version = client.get("/v1/index").json()["version"]
    path = settings.index_dir / DELTA_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    encoder = CountingEncoder()
    with TestClient(create_app(settings, encoder)) as client:
        wait_ready(client)
        assert encoder.texts >= len(COOKING)  # the topic's examples came from the change log, embedded again
        assert client.get("/v1/index").json()["version"] == version
        assert client.get("/v1/index/verify").json()["ok"] is True
        assert client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()["category"] == "cooking"


def test_the_database_copy_is_the_full_artifact_alone(client: TestClient, settings: Settings) -> None:
    """A replica loads the newest full build's artifact from the database and replays the change log after it: an
    edit's delta in the builder's home never goes there."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    built = read_guard_metadata(settings.index_dir)["version"]
    drop_stored_artifacts(settings.resolved_database_url)
    create_cooking(client)
    _portal(client).call(ctx.edits.flush)
    ctx.edits.artifacts.publish(built)
    with ctx.sessions() as session:
        repo = IndexArtifactRepository(session)
        (stored,) = repo.newest()
        assert stored.version == built
        assert DELTA_FILE not in repo.files(stored.id)
