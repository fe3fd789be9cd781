"""Per-key quotas, the request budget and cancellation on disconnect, through the API and the CLI (issue 22)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.disconnect import cancel_on_disconnect
from service.app import create_app
from service.cli.admin import register
from service.errors import ClientDisconnectedError, InvalidRequestError, RateLimitedError
from service.schemas.keys import RATE_LIMIT_PATTERN
from service.usecases.quotas import KeyLimits, ProcessMemoryStorage, Quotas, parse_rate
from tests.service.support import FIXTURES, lightguard_server, make_settings, wait_ready

ADMIN = "lg_test_admin_key_for_quotas_0123"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", re.MULTILINE)
    for found, value in pattern.findall(client.get("/metrics").text):
        if ",".join(sorted(found.split(","))) == wanted or (not labels and not found):
            return float(value)
    return 0.0


def test_the_anonymous_caller_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, rate_limit="3/minute"))) as client:
        wait_ready(client)
        admitted = [client.post("/v1/classify", json={"text": f"hello {n}"}) for n in range(3)]
        assert [r.status_code for r in admitted] == [200, 200, 200]
        assert all("flagged" in r.json() for r in admitted), "admitted requests keep their verdicts"
        refused = client.post("/v1/classify", json={"text": "one more"})
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited" and "LIGHTGUARD_RATE_LIMIT" in refused.json()["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert client.post("/v1/moderations", json={"input": "and here"}).status_code == 429
        assert metric(client, "lightguard_rate_limited_total", key="anonymous", limit="rate") == 2
        too_many = client.post("/v1/classify", json={"texts": ["a", "b", "c", "d"]})
        assert too_many.status_code == 422 and "split it" in too_many.json()["detail"]


def test_a_keys_own_limits_are_set_through_the_api_and_apply_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, admin_key=ADMIN, key_cache_ttl_s=0)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        created = client.post(
            "/v1/keys", json={"role": "classify", "name": "app", "rate_limit": "2/minute"}, headers=bearer(ADMIN)
        )
        assert created.status_code == 201, created.text
        key = created.json()
        assert key["rate_limit"] == "2/minute" and key["max_concurrency"] is None and key["token"].startswith("lg_")
        token = key["token"]
        statuses = [client.post("/v1/classify", json={"text": "hi"}, headers=bearer(token)).status_code for _ in "abc"]
        assert statuses == [200, 200, 429]
        assert client.post("/v1/classify", json={"text": "hi"}, headers=bearer(ADMIN)).status_code == 200, (
            "another key has its own counters"
        )
        patched = client.patch(f"/v1/keys/{key['id']}", json={"rate_limit": "none"}, headers=bearer(ADMIN))
        assert patched.status_code == 200 and patched.json()["rate_limit"] == "none"
        assert client.post("/v1/classify", json={"text": "hi"}, headers=bearer(token)).status_code == 200
        bad = client.patch(f"/v1/keys/{key['id']}", json={"rate_limit": "lots"}, headers=bearer(ADMIN))
        assert bad.status_code == 422 and bad.json()["field"] == "rate_limit"
        assert client.patch(f"/v1/keys/{key['id']}", json={}, headers=bearer(ADMIN)).status_code == 422
        assert client.get("/v1/keys", headers=bearer(token)).status_code == 403, "a classify key cannot manage keys"
        listed = client.get("/v1/keys", headers=bearer(ADMIN)).json()["keys"]
        assert [k["name"] for k in listed] == ["LIGHTGUARD_ADMIN_KEY", "app"] and "token" not in listed[1]
        assert client.delete(f"/v1/keys/{key['id']}", headers=bearer(ADMIN)).json()["revoked_at"] is not None
        assert client.post("/v1/classify", json={"text": "hi"}, headers=bearer(token)).status_code == 403
        assert client.patch("/v1/keys/999", json={"max_concurrency": 2}, headers=bearer(ADMIN)).status_code == 404


def test_a_request_over_the_budget_gets_413_naming_the_setting(tmp_path: Path) -> None:
    long = "A sentence about the weather and the garden. " * 200  # ~9,000 characters: ~20 windows
    with TestClient(create_app(make_settings(tmp_path, max_request_cost=16))) as client:
        wait_ready(client)
        refused = client.post("/v1/classify", json={"texts": [long, long]})
        assert refused.status_code == 413
        body = refused.json()
        assert body["error"] == "payload_too_large"
        assert "LIGHTGUARD_MAX_REQUEST_COST" in body["detail"] and "split it" in body["detail"]
        assert metric(client, "lightguard_rejected_over_budget_total") == 1
        assert client.post("/v1/classify", json={"text": long[:2000]}).status_code == 200, "within the budget"


def test_the_request_timeout_is_part_of_the_contract(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        wait_ready(client)
        assert client.post("/v1/classify", json={"text": "hi", "timeout": 5}).status_code == 200
        assert client.post("/v1/classify", json={"text": "hi"}, headers={"X-Request-Timeout": "5"}).status_code == 200
        assert client.post("/v1/classify", json={"text": "hi", "timeout": 0}).status_code == 422
        assert client.post("/v1/classify", json={"text": "hi", "timeout": None}).status_code == 422
        assert client.post("/v1/classify", json={"text": "hi"}, headers={"X-Request-Timeout": "-1"}).status_code == 422


def test_concurrency_is_limited_per_caller_and_released_after_each_request() -> None:
    quotas = Quotas(None, 2)
    with quotas.admit(1, None, 1), quotas.admit(1, None, 1):
        with pytest.raises(RateLimitedError) as refused, quotas.admit(1, None, 1):
            pass
        assert refused.value.retry_after_s == 1
        with quotas.admit(2, None, 1):  # another key
            pass
        with quotas.admit(1, KeyLimits(max_concurrency=3), 1):  # the key's own limit wins
            pass
    with quotas.admit(1, None, 1), quotas.admit(1, None, 1):
        pass
    assert quotas._inflight == {}


@pytest.mark.parametrize(
    "value", ["100/second", "5 per 10 seconds", "100/second;1000/day", "7/2 minutes", "none", "unlimited"]
)
def test_the_schema_pattern_accepts_what_the_rate_parser_accepts(value: str) -> None:
    assert re.fullmatch(RATE_LIMIT_PATTERN, value)
    parse_rate(value)


@pytest.mark.parametrize("value", ["lots", "0/second", "100", "100/fortnight", "/second"])
def test_the_schema_pattern_refuses_what_the_rate_parser_refuses(value: str) -> None:
    assert not re.fullmatch(RATE_LIMIT_PATTERN, value)
    if value != "0/second":  # limits parses a zero amount; the schema refuses it: a key that can never call
        with pytest.raises(InvalidRequestError):
            parse_rate(value)


class DisconnectingRequest:
    """The part of a Starlette Request that cancel_on_disconnect reads: the client has gone away."""

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.disconnect"}


def test_a_disconnected_client_has_its_work_cancelled() -> None:
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.Event().wait()  # never set: the work would run forever
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "done"

    async def scenario() -> None:
        with pytest.raises(ClientDisconnectedError):
            await cancel_on_disconnect(DisconnectingRequest(), work())  # type: ignore[arg-type]
        assert cancelled.is_set()

    asyncio.run(scenario())


def test_cli_sets_and_lists_a_keys_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("LIGHTGUARD_DATA_DIR", str(FIXTURES))
    cli = typer.Typer()
    register(cli)
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--rate-limit", "10/second", "--max-concurrency", "4"])
    assert created.exit_code == 0, created.output
    assert "10/second" in runner.invoke(cli, ["keys", "list"]).stdout
    changed = runner.invoke(cli, ["keys", "limits", "1", "--rate-limit", "none"])
    assert changed.exit_code == 0 and "rate none, concurrency 4" in changed.stdout
    assert runner.invoke(cli, ["keys", "limits", "1", "--rate-limit", "lots"]).exit_code == 1
    assert runner.invoke(cli, ["keys", "limits", "1", "--default"]).exit_code == 0
    assert "default" in runner.invoke(cli, ["keys", "list"]).stdout
    assert runner.invoke(cli, ["keys", "limits", "7", "--max-concurrency", "2"]).exit_code == 1


def _sample(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    return next((float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(name + wanted + " ")), 0.0)


def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s: {what}")
        time.sleep(0.005)  # polling a live server's metrics, not waiting a fixed time


@pytest.mark.server
def test_a_client_that_disconnects_mid_request_has_its_remaining_work_dropped(tmp_path: Path) -> None:
    # one window per slice: a 3-document request is hundreds of scheduling steps, far more than the time the server
    # needs to notice the closed connection once the first slice has run
    env = {"LIGHTGUARD_SLICE_RUNS": "1", "LIGHTGUARD_MAX_REQUEST_COST": "4096"}
    document = " ".join(f"Line {n} of a long and harmless report about the weather." for n in range(1600))
    body = json.dumps({"texts": [document] * 3}).encode()
    with lightguard_server(tmp_path, ADMIN, env=env) as srv:
        host, port = srv.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            head = (
                f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            _until(
                lambda: _sample(srv.base, "lightguard_queue_wait_seconds_count", lane="large") >= 1,
                "the request's first slice",
            )
        _until(
            lambda: _sample(srv.base, "lightguard_dropped_requests_total", reason="disconnected") == 1,
            "the request counted as dropped",
        )
        dropped = _sample(srv.base, "lightguard_dropped_model_runs_total", reason="disconnected")
        assert dropped > 100, "most of the request's model runs were never done"
        statuses = httpx.get(f"{srv.base}/metrics", timeout=10).text
        assert 'route="/v1/classify",status="499"' in statuses


def _redis_url() -> str:
    url = "redis://127.0.0.1:6379/0"
    try:
        probe = Quotas(None, None, url)
        reachable = probe._storage.check()
        probe.close()
        if reachable:
            return url
    except Exception:  # no server, or no redis client installed
        pass
    if os.environ.get("LIGHTGUARD_REQUIRE_REDIS"):
        raise AssertionError("Redis on 127.0.0.1:6379 is required (LIGHTGUARD_REQUIRE_REDIS) but not reachable")
    pytest.skip("no Redis server on 127.0.0.1:6379")


@pytest.mark.redis
def test_processes_sharing_a_redis_storage_share_a_keys_rate() -> None:
    # two Quotas are what two workers (or replicas) hold; a fresh key id per run keeps runs apart in the server
    url = _redis_url()
    key = int(time.time() * 1000) % 2**31
    first, second = Quotas("4/minute", None, url), Quotas("4/minute", None, url)
    try:
        for quotas in (first, second, first, second):
            with quotas.admit(key, None, 1):
                pass
        with pytest.raises(RateLimitedError) as refused, second.admit(key, None, 1):
            pass
        assert 1 <= refused.value.retry_after_s <= 60
    finally:
        first.close()
        second.close()
    memory = Quotas("4/minute", None)  # the default: counts in this process only
    for _ in range(4):
        with memory.admit(key, None, 1):
            pass


def test_the_in_process_rate_counters_start_no_thread_and_still_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    """limits' MemoryStorage starts a timer thread every 10 ms of traffic; the quotas' storage must start none, still
    refuse over the rate, and drop expired entries itself."""
    quotas = Quotas("5/second", None)
    assert isinstance(quotas._storage, ProcessMemoryStorage)
    storage = ProcessMemoryStorage()  # its constructor starts (and stops) limits' first timer: once per storage

    def no_thread(self: threading.Thread) -> None:
        raise AssertionError(f"a rate-limit hit started a thread ({self!r})")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    for _ in range(5):
        with quotas.admit(None, None, 1):
            pass
    with pytest.raises(RateLimitedError), quotas.admit(None, None, 1):
        pass

    storage.EXPIRE_EVERY_S = 0.0  # every change drops what has expired
    for _ in range(3):
        storage.acquire_entry("k", 10, 60)
    for entry in storage.events["k"][1:]:  # newest first: the two older entries have expired
        entry.expiry = time.time() - 1
    storage.acquire_entry("other", 10, 60)
    assert len(storage.events["k"]) == 1
