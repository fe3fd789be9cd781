"""The bench's load generator (benchmarks/serving/load.py): every request answered, its prompts counted, and its own
CPU time reported (it shares the cores with the server, so the bench prints what it takes)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from benchmarks.serving.load import load_worker


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
    seen: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = [body["text"]] if "text" in body else body["texts"]
        Handler.seen.append(len(texts))
        payload = json.dumps({"results": [{"flagged": False} for _ in texts]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_worker_counts_requests_prompts_and_its_own_cpu(port: int) -> None:
    res = load_worker(port, "batch", 6, 2)
    assert len(res["samples"]) == 6 and all(s > 0 for s in res["samples"])
    assert res["prompts"] == 6 * 64
    assert Handler.seen == [64] * (5 + 6)  # the warm-up's 5, then the measured ones
    assert res["wall"] > 0 and res["client_cpu_s"] > 0


def test_single_prompt_clients_split_the_requests(port: int) -> None:
    res = load_worker(port, "single", 40, 8)
    assert len(res["samples"]) == 40 and res["prompts"] == 40
    assert Handler.seen == [1] * (5 + 40)
