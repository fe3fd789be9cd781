"""End to end against a real uvicorn process on loopback and a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.service.support import COOKING, COOKING_PARAPHRASE, fresh_pg_database, lightguard_server

ADMIN = "lg_e2e_admin_key_for_tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@contextmanager
def server(home: Path, database_url: str) -> Iterator[str]:
    """The app under uvicorn's own command line (`uvicorn service.app:create_app --factory`), as a deployment may
    start it; yields the base URL once /readyz says 200."""
    with lightguard_server(home, ADMIN, database_url=database_url, launcher="uvicorn") as srv:
        yield srv.base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'e2e.db'}"
        return
    with fresh_pg_database("lightguard_e2e") as url:  # each test its own: restarts see only their own state
        yield url


def classify(base: str, text: str) -> dict[str, object]:
    r = httpx.post(f"{base}/v1/classify", json={"text": text}, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.server
def test_topic_lifecycle_across_restarts(tmp_path: Path, database_url: str) -> None:
    with server(tmp_path, database_url) as base:
        assert classify(base, COOKING_PARAPHRASE)["flagged"] is False
        r = httpx.post(f"{base}/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=AUTH, timeout=30)
        assert r.status_code == 201, r.text
        topic_id = r.json()["id"]
        verdict = classify(base, COOKING_PARAPHRASE)
        assert verdict["flagged"] is True and verdict["category"] == "cooking"
    with server(tmp_path, database_url) as base:  # restart: the topic survives
        assert classify(base, COOKING_PARAPHRASE)["category"] == "cooking"
        assert httpx.delete(f"{base}/v1/topics/{topic_id}", headers=AUTH, timeout=30).status_code == 204
        assert classify(base, COOKING_PARAPHRASE)["flagged"] is False
        version = classify(base, "hello")["index_version"]
    with server(tmp_path, database_url) as base:  # restart: the deletion survives, nothing rebuilt
        after = classify(base, COOKING_PARAPHRASE)
        assert after["flagged"] is False and after["index_version"] == version
        assert httpx.get(f"{base}/v1/index/verify", headers=AUTH, timeout=10).json()["ok"] is True
        assert httpx.post(f"{base}/v1/classify", json={"text": "x"}, timeout=10).status_code == 401


@pytest.mark.server
def test_official_openai_client(tmp_path: Path) -> None:
    from openai import OpenAI, PermissionDeniedError

    with server(tmp_path, f"sqlite:///{tmp_path / 'openai.db'}") as base:
        client = OpenAI(base_url=f"{base}/v1", api_key=ADMIN, max_retries=0)
        result = client.moderations.create(
            input=["how do I build a bomb to kill people", "what is the capital of france"]
        )
        assert result.id.startswith("modr-") and len(result.results) == 2
        first, second = result.results
        assert first.flagged is True and first.categories.violence is True
        assert first.category_scores.violence > first.category_scores.hate
        assert second.flagged is False and second.categories.violence is False
        with pytest.raises(PermissionDeniedError):
            OpenAI(base_url=f"{base}/v1", api_key="lg_wrong", max_retries=0).moderations.create(input="hi")


@pytest.mark.server
def test_sequential_requests_share_one_keep_alive_connection(tmp_path: Path) -> None:
    """A client reusing one connection (what the bench's load generator and most SDKs do) gets every answer on it."""
    with server(tmp_path, f"sqlite:///{tmp_path / 'keepalive.db'}") as base, httpx.Client(headers=AUTH) as http:
        versions = set()
        for n in range(60):
            r = http.post(f"{base}/v1/classify", json={"text": f"how do I bake bread number {n}"})
            assert r.status_code == 200, r.text
            assert r.headers.get("connection", "keep-alive").lower() != "close"
            versions.add(r.json()["index_version"])
        assert len(versions) == 1
