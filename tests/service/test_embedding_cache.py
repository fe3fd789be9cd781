"""LIGHTGUARD_EMBEDDING_CACHE: a new empty home on a host that built one embeds nothing, and says so in /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import REPO_ROOT, Settings
from tests.conftest import CountingEncoder
from tests.service.support import COOKING, make_settings, wait_ready


def cache_texts(client: TestClient, result: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'lightguard_embedding_cache_texts_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_new_home_builds_from_the_warm_cache(tmp_path: Path) -> None:
    cache = tmp_path / "shared" / "embeddings.sqlite3"
    first = CountingEncoder()
    with TestClient(create_app(make_settings(tmp_path / "a", embedding_cache=str(cache)), first)) as a:
        wait_ready(a)
        seeded = first.texts
        assert seeded > 0 and cache_texts(a, "hit") == 0 and cache_texts(a, "miss") == seeded
    second = CountingEncoder()
    # another home and database on the same host (as `rm -rf var` and a restart): nothing to embed
    with TestClient(create_app(make_settings(tmp_path / "b", embedding_cache=str(cache)), second)) as b:
        wait_ready(b)
        assert second.texts == 0
        assert cache_texts(b, "hit") == seeded and cache_texts(b, "miss") == 0
        # topic examples go through the cache too; classify traffic does not
        before = second.texts
        assert b.post("/v1/classify", json={"text": "a prompt seen by no cache"}).status_code == 200
        assert cache_texts(b, "miss") == 0
        response = b.post("/v1/topics", json={"name": "cooking", "description": "baking", "examples": COOKING})
        assert response.status_code == 201, response.text
        assert cache_texts(b, "miss") == len(set(COOKING)) and second.texts - before >= len(set(COOKING))


def test_the_cache_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings().resolved_embedding_cache is None  # tests/conftest.py turns it off for every test
    monkeypatch.delenv("LIGHTGUARD_EMBEDDING_CACHE")
    assert Settings().resolved_embedding_cache == REPO_ROOT / ".cache" / "embeddings.sqlite3"  # outside var/
    monkeypatch.setenv("LIGHTGUARD_EMBEDDING_CACHE", str(tmp_path / "v.sqlite3"))
    assert Settings().resolved_embedding_cache == tmp_path / "v.sqlite3"
    monkeypatch.setenv("LIGHTGUARD_EMBEDDING_CACHE", "OFF")
    assert Settings().resolved_embedding_cache is None
