"""The index derived from the database: load vs rebuild at start-up, atomic rebuilds, readiness, metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from service.settings import Settings
from tests.service.support import (
    COOKING_PARAPHRASE,
    create_cooking,
    drop_stored_artifacts,
    make_settings,
    rebuild_and_wait,
    wait_ready,
)


class GatedEncoder(HashingEncoder):
    """Blocks encoding of exemplars (batches > 1 text) until released, to observe the service mid-build."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def encode(self, texts: Sequence[str], batch_size: int = 32):  # type: ignore[no-untyped-def]
        if len(texts) > 1:
            self.entered.set()
            assert self.gate.wait(30), "test never released the gate"
        return super().encode(texts, batch_size)


def builds(client: TestClient) -> list[dict[str, object]]:
    return list(client.get("/v1/index").json()["recent_builds"])


def test_restart_loads_the_artifact_without_rebuilding(settings: Settings) -> None:
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        create_cooking(client)
        version = client.get("/v1/index").json()["version"]
    assert (settings.index_dir / "guard.json").is_file()
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        info = client.get("/v1/index").json()
        assert info["version"] == version and not any(
            b["trigger"] == "startup" and b["version"] > 1 for b in builds(client)
        )
        verdict = client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
        assert verdict["category"] == "cooking" and verdict["index_version"] == version


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale", "model"])
def test_bad_artifact_is_rebuilt(settings: Settings, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        create_cooking(client)
        version = client.get("/v1/index").json()["version"]
    encoder = HashingEncoder()
    if damage == "missing":  # in the home and in the database (with a copy there, test_artifact_store)
        for f in settings.index_dir.iterdir():
            f.unlink()
        drop_stored_artifacts(settings.resolved_database_url)
    elif damage == "corrupt":
        (settings.index_dir / "vectors.faiss").write_bytes(b"garbage")
    elif damage == "stale":
        from sqlalchemy import update

        from service.db.engine import create_db_engine
        from service.db.models import Topic

        engine = create_db_engine(settings.resolved_database_url)
        with engine.begin() as conn:
            conn.execute(update(Topic).where(Topic.name == "cooking").values(action="flag"))
        engine.dispose()
    else:
        encoder = HashingEncoder(dim=32)
    caplog.set_level(logging.WARNING, logger="service")
    with TestClient(create_app(settings, encoder)) as client:
        wait_ready(client)
        info = client.get("/v1/index").json()
        assert info["version"] > version and builds(client)[0]["trigger"] == "startup"
        assert "rebuilding from the database" in caplog.text
        verdict = client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
        assert verdict["category"] == "cooking"
        assert client.get("/v1/index/verify").json()["ok"]


def test_rebuild_swaps_atomically_while_classify_answers(tmp_path: Path) -> None:
    encoder = GatedEncoder()
    encoder.gate.set()
    with TestClient(create_app(make_settings(tmp_path), encoder)) as client:
        wait_ready(client)
        create_cooking(client)
        before = client.get("/v1/index").json()["version"]
        encoder.gate.clear()
        encoder.entered.clear()
        result: dict[str, object] = {}
        worker = threading.Thread(target=lambda: result.update(rebuild_and_wait(client)))
        worker.start()
        assert encoder.entered.wait(10)
        during = client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
        assert during["index_version"] == before and during["category"] == "cooking"
        assert client.get("/v1/index").json()["rebuilding"] is True
        encoder.gate.set()
        worker.join(30)
        assert result["version"] == before + 1 and result["status"] == "succeeded"
        after = client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
        assert after["index_version"] == before + 1 and after["category"] == "cooking"
        assert client.get("/v1/index/verify").json()["ok"]


def test_readyz_is_503_until_the_index_is_loaded(tmp_path: Path) -> None:
    encoder = GatedEncoder()
    with TestClient(create_app(make_settings(tmp_path), encoder)) as client:
        assert client.get("/healthz").status_code == 200
        assert encoder.entered.wait(10)
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["error"] == "index_not_ready"
        busy = client.post("/v1/classify", json={"text": "hello"})
        assert busy.status_code == 503 and "readyz" in busy.json()["detail"]
        encoder.gate.set()
        wait_ready(client)


def test_metrics(client: TestClient) -> None:
    client.post("/v1/classify", json={"text": "how do I build a bomb to kill people"})
    client.post("/v1/classify", json={"text": "  "})
    text = client.get("/metrics").text
    assert 'lightguard_http_requests_total{method="POST",route="/v1/classify",status="200"} 1.0' in text
    assert 'route="/v1/classify",status="422"' in text
    assert 'lightguard_flagged_total{category="violence"} 1.0' in text
    assert "lightguard_http_request_duration_seconds_bucket" in text
    assert "lightguard_index_exemplars 26.0" in text and "lightguard_index_version 1.0" in text


def test_openapi_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/classify", "/v1/moderations", "/v1/topics", "/v1/index/rebuild", "/readyz"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
