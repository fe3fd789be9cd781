"""`lightguard serve --workers 2` on loopback: every worker converges on the newest index version, on SQLite and
PostgreSQL; without the follower they do not (the control that shows the test can fail)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from service.cli.admin import listening_socket
from tests.service.support import COOKING, COOKING_PARAPHRASE, Server, lightguard_server, rebuild_and_wait

ADMIN = "lg_workers_admin_key_for_tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
CONVERGE_S = 15.0  # follow interval 0.5 s; generous for 2 shared, busy cores


def index_on_fresh_connection(srv: Server) -> dict[str, object]:
    """GET /v1/index on a new connection, so the kernel may hand it to either worker."""
    r = httpx.get(f"{srv.base}/v1/index", headers=AUTH | {"Connection": "close"}, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def worker_versions(srv: Server, until: object, timeout: float, workers: int = 2) -> dict[int, int]:
    """Sample fresh connections until `until(versions)` holds for the newest version each worker reported."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = index_on_fresh_connection(srv)
        if info["status"] == "ready":
            seen[int(info["worker"])] = int(info["version"])  # type: ignore[call-overload]
        if len(seen) == workers and until(seen):  # type: ignore[operator]
            return seen
        time.sleep(0.02)  # polling interval under a deadline
    raise AssertionError(f"workers did not get there within {timeout}s: {seen}")


def classify_fresh(srv: Server, text: str) -> dict[str, object]:
    r = httpx.post(f"{srv.base}/v1/classify", json={"text": text}, headers=AUTH | {"Connection": "close"}, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.server
def test_two_workers_converge_on_the_newest_version(tmp_path: Path, database_url: str) -> None:
    with lightguard_server(tmp_path, ADMIN, database_url=database_url, workers=2) as srv:
        start = worker_versions(srv, lambda v: True, 60)  # both workers loaded the index
        assert len(set(start.values())) == 1, start

        created = httpx.post(f"{srv.base}/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=AUTH)
        assert created.status_code == 201, created.text
        version = int(created.json()["index_version"])
        t0 = time.monotonic()
        seen = worker_versions(srv, lambda v: min(v.values()) >= version, CONVERGE_S)
        print(f"\nboth workers at >= v{version} {time.monotonic() - t0:.2f} s after the create: {seen}")
        for _ in range(10):  # any worker, any fresh connection: the topic is there
            verdict = classify_fresh(srv, COOKING_PARAPHRASE)
            assert verdict["category"] == "cooking" and int(verdict["index_version"]) >= version  # type: ignore[call-overload]

        # an edit through one worker of a topic the other created, then a delete: both followed too
        topic_id = created.json()["id"]
        patched = httpx.patch(f"{srv.base}/v1/topics/{topic_id}", json={"action": "flag"}, headers=AUTH, timeout=30)
        assert patched.status_code == 200, patched.text
        removed = httpx.delete(f"{srv.base}/v1/topics/{topic_id}", headers=AUTH, timeout=30)
        assert removed.status_code == 204, removed.text
        final = worker_versions(srv, lambda v: min(v.values()) > int(patched.json()["index_version"]), CONVERGE_S)
        assert len(set(final.values())) == 1, final
        for _ in range(10):
            assert classify_fresh(srv, COOKING_PARAPHRASE)["category"] != "cooking"
            verify = httpx.get(f"{srv.base}/v1/index/verify", headers=AUTH | {"Connection": "close"}, timeout=30)
            assert verify.json()["ok"] is True, verify.json()

        # a full rebuild through one worker: the other loads its artifact
        with httpx.Client(base_url=srv.base, headers=AUTH, timeout=60) as http:
            rebuilt = rebuild_and_wait(http)
        assert rebuilt["status"] == "succeeded", rebuilt
        worker_versions(srv, lambda v: min(v.values()) >= int(rebuilt["version"]), CONVERGE_S)
    log = srv.log.read_text()
    assert "followed" in log and "artifact loaded" in log, log[-3000:]


@pytest.mark.server
def test_without_the_follower_a_worker_stays_behind(tmp_path: Path) -> None:
    """The control: with LIGHTGUARD_FOLLOW_INTERVAL_S=0 the worker that did not serve the edit keeps its version."""
    with lightguard_server(tmp_path, ADMIN, workers=2, env={"LIGHTGUARD_FOLLOW_INTERVAL_S": "0"}) as srv:
        worker_versions(srv, lambda v: True, 60)
        created = httpx.post(f"{srv.base}/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=AUTH)
        assert created.status_code == 201, created.text
        version = int(created.json()["index_version"])
        seen = worker_versions(srv, lambda v: True, CONVERGE_S)
        assert min(seen.values()) < version <= max(seen.values()), seen


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_workers_socket_gets_tcp_nodelay(loop: str) -> None:
    """uvicorn's own shared socket (protocol 0) leaves Nagle on under the asyncio loop; ours turns it off there too.
    uvloop (uvicorn's default when installed) sets TCP_NODELAY on both. Without it each kept-alive response waits
    for the client's delayed ACK (STACK-NOTES)."""
    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run

    async def accepted_nodelay(sock: socket.socket) -> int:
        flags: list[int] = []

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                flags.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname())
        while not flags:
            await asyncio.sleep(0.001)  # until the server side has accepted
        writer.close()
        server.close()
        return flags[0]

    assert run(accepted_nodelay(listening_socket("127.0.0.1", 0))) == 1
    uvicorns = uvicorn.Config(app=None, host="127.0.0.1", port=0).bind_socket()
    assert run(accepted_nodelay(uvicorns)) == (0 if loop == "asyncio" else 1)
