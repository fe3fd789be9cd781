"""GET /v1/index shows how far a rebuild (POST /v1/index/rebuild) is while it runs, as its job does
(GET /v1/index/builds/{id}): the console polls them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from tests.service.support import make_settings, wait_build, wait_ready


class GatedEncoder(HashingEncoder):
    """Once `hold` is set, the first thread to encode (the rebuild's) gets one batch through, then waits for
    `release`, so a rebuild stops mid-way; other threads (classify) encode as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.builder: int | None = None
        self.release = threading.Event()

    def encode(self, texts: Sequence[str], batch_size: int = 32):  # type: ignore[no-untyped-def]
        if self.hold:
            if self.builder is None:
                self.builder = threading.get_ident()
            elif self.builder == threading.get_ident():
                assert self.release.wait(30), "the test never released the rebuild"
        return super().encode(texts, batch_size)


def test_index_reports_rebuild_progress_while_it_embeds(tmp_path: Path) -> None:
    encoder = GatedEncoder()
    with TestClient(create_app(make_settings(tmp_path), encoder)) as client:
        wait_ready(client)
        assert client.get("/v1/index").json()["progress"] is None
        encoder.hold = True
        started = client.post("/v1/index/rebuild")
        assert started.status_code == 202, started.text  # at once, while the build embeds
        try:
            for _ in range(1_000):  # polling, as the console does, until the first batch is reported
                state = client.get("/v1/index").json()
                if state["progress"] is not None:
                    break
                threading.Event().wait(0.01)  # polling interval
            assert state["rebuilding"] is True and state["status"] == "ready"  # the old index still serves
            assert 0 < state["progress"]["done"] < state["progress"]["total"]
            assert client.post("/v1/classify", json={"text": "still answering"}).status_code == 200
        finally:
            encoder.release.set()
        done = wait_build(client, started.headers["Location"])
        assert done["status"] == "succeeded", done
        after = client.get("/v1/index").json()
        assert after["progress"] is None and after["rebuilding"] is False and after["version"] == done["version"]
