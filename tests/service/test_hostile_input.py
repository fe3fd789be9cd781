"""Hostile input: limits are enforced before any encoding, and arbitrary bodies never produce a 5xx."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index import HashingEncoder
from index.types import Vectors
from service.app import create_app
from tests.service.support import make_settings, wait_ready


class CountingEncoder(HashingEncoder):
    """The hashing encoder, counting `encode` calls (how the test sees whether heavy work started)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        self.calls += 1
        return super().encode(texts, batch_size)


def test_limits_are_checked_before_the_encoder_runs(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    # slice_runs 8: the admitted request of 8 short texts is micro-batched whole, one encoder call
    app = create_app(make_settings(tmp_path, max_batch=8, max_text_chars=200, max_examples=5, slice_runs=8), encoder)
    with TestClient(app) as client:
        wait_ready(client)
        start = encoder.calls
        over = client.post("/v1/classify", json={"texts": ["hello"] * 9})
        assert over.status_code == 422 and "LIGHTGUARD_MAX_BATCH" in over.json()["detail"]
        long = client.post("/v1/classify", json={"text": "x" * 201})
        assert long.status_code == 422 and "LIGHTGUARD_MAX_TEXT_CHARS" in long.json()["detail"]
        moderations = client.post("/v1/moderations", json={"input": ["hi"] * 9})
        assert moderations.status_code == 422
        topic = client.post("/v1/topics", json={"name": "t", "examples": [f"example {n}" for n in range(6)]})
        assert topic.status_code == 422 and "LIGHTGUARD_MAX_EXAMPLES" in topic.json()["detail"]
        blank = client.post("/v1/classify", json={"texts": ["ok", "\u200b \u200d"]})
        assert blank.status_code == 422
        assert encoder.calls == start  # nothing was encoded for any refused request
        assert client.post("/v1/classify", json={"texts": ["hello"] * 8}).status_code == 200
        assert encoder.calls == start + 1


def test_body_above_the_byte_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    with TestClient(create_app(make_settings(tmp_path, max_body_bytes=4096), encoder)) as client:
        wait_ready(client)
        start = encoder.calls
        big = client.post("/v1/classify", content=b'{"text": "' + b"a" * 8000 + b'"}')
        assert big.status_code == 413 and big.json()["error"] == "payload_too_large"

        def chunks() -> object:
            yield b'{"text": "'
            for _ in range(10):
                yield b"a" * 1000
            yield b'"}'

        streamed = client.post("/v1/classify", content=chunks())  # type: ignore[arg-type]
        assert streamed.status_code == 413
        assert encoder.calls == start


def test_malformed_bodies_are_4xx(client: TestClient) -> None:
    for raw in (b"{", b"\xff\xfe\x00", b"[]", b"null", b'{"text": 5}', b'{"texts": "a"}', b'{"text": ""}'):
        r = client.post("/v1/classify", content=raw, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (raw, r.status_code, r.text)
        assert set(r.json()) >= {"error", "detail"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
TEXTS = st.text(max_size=300)


@pytest.fixture(scope="module")
def hostile_client(tmp_path_factory: pytest.TempPathFactory) -> object:
    app = create_app(make_settings(tmp_path_factory.mktemp("hostile"), max_batch=16), HashingEncoder())
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def _ok(status: int) -> bool:
    return status < 500


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=JSON
    | st.fixed_dictionaries({"text": TEXTS})
    | st.fixed_dictionaries({"texts": st.lists(TEXTS, max_size=20)})
    | st.fixed_dictionaries({"input": st.one_of(TEXTS, st.lists(TEXTS, max_size=5), JSON)})
)
def test_classify_never_5xx(hostile_client: TestClient, body: object) -> None:
    for path in ("/v1/classify", "/v1/moderations"):
        r = hostile_client.post(path, json=body)
        assert _ok(r.status_code), (path, body, r.status_code, r.text)
        if r.status_code == 200 and path == "/v1/classify":
            results = r.json().get("results", [r.json()])
            assert all(0.0 <= v["score"] <= 1.0 for v in results)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=JSON
    | st.fixed_dictionaries(
        {"name": st.text(max_size=40), "examples": st.lists(TEXTS, max_size=6)},
        optional={
            "allow_examples": st.lists(TEXTS, max_size=3),
            "threshold": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "action": st.text(max_size=8) | st.sampled_from(["block", "flag"]),
            "description": st.text(max_size=40),
        },
    )
)
def test_topics_never_5xx(hostile_client: TestClient, body: object) -> None:
    r = hostile_client.post("/v1/topics", json=body)
    assert _ok(r.status_code), (body, r.status_code, r.text)
    if r.status_code == 201:
        topic_id = r.json()["id"]
        patched = hostile_client.patch(f"/v1/topics/{topic_id}", json={"threshold": None})
        assert _ok(patched.status_code), patched.text
        assert hostile_client.delete(f"/v1/topics/{topic_id}").status_code == 204
    assert hostile_client.get("/v1/index/verify").json()["ok"] is True


def test_the_fast_emptiness_check_agrees_with_normalisation_on_every_character() -> None:
    # Limits decides "empty after normalisation" without normalising when it finds a word character; that shortcut
    # must never accept a text that normalises to nothing (checked one character at a time, which is what matters:
    # normalisation keeps or drops each word character on its own).
    from index import normalize_text
    from service.usecases.limits import has_content

    for code in range(0x110000):
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        assert has_content(ch) == bool(normalize_text(ch)), hex(code)
