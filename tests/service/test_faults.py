"""Faults: SIGKILL mid-rebuild and mid-topic-creation, corrupt artifacts, a tampered model, an unreachable or
failing database. After each, nothing committed is lost and nothing half-written is served."""

from __future__ import annotations

import json
import logging
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from index import HashingEncoder, ModelIntegrityError, read_guard_delta
from index.artifact_delta import base_id
from service.app import create_app
from service.db.engine import create_db_engine, session_scope
from service.db.models import Decision
from service.serving.encoders import build_encoder
from service.usecases.seed import load_background
from tests.conftest import CountingEncoder
from tests.service.support import (
    COOKING,
    COOKING_PARAPHRASE,
    FIXTURES,
    Server,
    create_cooking,
    drop_stored_artifacts,
    free_port,
    lightguard_server,
    make_settings,
    rebuild_and_wait,
    server_env,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "lg_fault_admin_key_for_tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


# ---------------------------------------------------------------------------- a real server we can kill
def big_data_dir(root: Path, rows: int = 6000, background: int = 3000) -> Path:
    """The fixture taxonomy with enough exemplars that a hashing-encoder rebuild takes about a second (a window wide
    enough to SIGKILL into) and enough background that calibrating a 500-example topic is not instant."""
    out = root / "data"
    out.mkdir()
    shutil.copy(FIXTURES / "taxonomy.toml", out / "taxonomy.toml")
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(3000)]
    seed = (FIXTURES / "safety.jsonl").read_text(encoding="utf-8")
    categories = sorted({json.loads(line)["category"] for line in seed.splitlines()})
    with (out / "safety.jsonl").open("w") as fh:
        fh.write(seed)
        for n in range(rows):
            text = " ".join(rng.choices(vocab, k=12)) + f" r{n}"
            row = {"text": text, "category": categories[n % len(categories)], "source": "t", "license": "CC0"}
            fh.write(json.dumps(row | {"split": "train", "family": "t", "noncommercial": False}) + "\n")
    with (out / "background.jsonl").open("w") as fh:
        for n in range(background):
            fh.write(json.dumps({"text": " ".join(rng.choices(vocab, k=10)) + f" b{n}"}) + "\n")
    return out


@contextmanager
def server(home: Path, data_dir: Path, database_url: str) -> Iterator[Server]:
    with lightguard_server(home, ADMIN, data_dir=data_dir, database_url=database_url) as srv:
        yield srv


def kill9(srv: Server) -> None:
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)


def post_in_background(url: str, body: object | None = None) -> threading.Thread:
    """POST from a thread; the server is killed under it, so a dropped connection is the expected outcome."""

    def run() -> None:
        with suppress(httpx.TransportError):
            httpx.post(url, json=body, headers=AUTH, timeout=60)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    return worker


def poll(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)  # polling interval under a deadline


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def build_rows(url: str) -> list[tuple[int, str, str]]:
    return query(url, "SELECT version, trigger, status FROM index_builds ORDER BY version")  # type: ignore[return-value]


def transaction_open(url: str) -> bool:
    """True while the server's topic transaction is open (not committed): SQLite's write lock is held by another
    connection; on PostgreSQL another backend holds a row lock from inserting into `exemplars` (i.e. the topic and
    its examples are flushed)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.rollback()
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()
    sql = (
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'exemplars' "
        "AND l.mode = 'RowExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()"
    )
    return bool(query(url, sql)[0][0])


def assert_consistent(base: str, home: Path) -> dict[str, object]:
    verify = httpx.get(f"{base}/v1/index/verify", headers=AUTH, timeout=30).json()
    assert verify["ok"] is True, verify["problems"]
    index = httpx.get(f"{base}/v1/index", headers=AUTH, timeout=10).json()
    assert index["status"] == "ready" and not index["rebuilding"]
    assert all(b["status"] != "building" for b in index["recent_builds"]), index["recent_builds"]
    # the artifact in use is the real directory, complete (temp dirs beside it are never read): its full artifact,
    # and the delta edits saved against it since, if any
    manifest = json.loads((home / "index" / "guard.json").read_text())
    delta = read_guard_delta(home / "index", base_id(manifest))
    assert (manifest["count"] if delta is None else delta[0].count) == index["count"]
    return dict(index)


@pytest.mark.server
def test_sigkill_during_rebuild_loses_nothing(tmp_path: Path, database_url: str) -> None:
    # a rebuild of ~30k hashing-encoder texts takes a few seconds; the build's progress reaches the database at most
    # once a second, so with the default 6,000 rows it could finish between the first progress seen and the kill
    data = big_data_dir(tmp_path, rows=30_000)
    with server(tmp_path, data, database_url) as srv:
        created = httpx.post(f"{srv.base}/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=AUTH)
        assert created.status_code == 201, created.text
        before = httpx.get(f"{srv.base}/v1/index", headers=AUTH).json()
        started = httpx.post(f"{srv.base}/v1/index/rebuild", headers=AUTH, timeout=30)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]

        def embedding() -> bool:
            progress = httpx.get(f"{srv.base}{location}", headers=AUTH, timeout=10).json()["progress"]
            return progress is not None and progress["embedded"] > 0

        poll(embedding, 30, "the rebuild to report progress")
        kill9(srv)
    # killed in the middle: the build row was committed as `building` and never finished
    assert any(s == "building" for _, _, s in build_rows(database_url))
    with server(tmp_path, data, database_url) as srv:
        index = assert_consistent(srv.base, tmp_path)
        assert index["version"] >= before["version"]
        failed = [b for b in index["recent_builds"] if b["trigger"] == "rebuild"]  # type: ignore[attr-defined]
        assert failed and failed[0]["status"] == "failed" and "interrupted" in failed[0]["error"]
        polled = httpx.get(f"{srv.base}{location}", headers=AUTH).json()  # the job polled after the restart
        assert polled["status"] == "failed" and "interrupted" in polled["error"], polled
        verdict = httpx.post(f"{srv.base}/v1/classify", json={"text": COOKING_PARAPHRASE}, headers=AUTH).json()
        assert verdict["category"] == "cooking"  # the committed topic survived
        # and a rebuild afterwards works
        with httpx.Client(base_url=srv.base, headers=AUTH, timeout=60) as http:
            assert rebuild_and_wait(http)["status"] == "succeeded"
        assert_consistent(srv.base, tmp_path)


@pytest.mark.server
def test_sigkill_during_topic_creation_leaves_no_half_topic(tmp_path: Path, database_url: str) -> None:
    data = big_data_dir(tmp_path)
    examples = [f"{text} variant {n}" for n in range(100) for text in COOKING][:500]
    with server(tmp_path, data, database_url) as srv:
        version = httpx.get(f"{srv.base}/v1/index", headers=AUTH).json()["version"]
        body = {"name": "baking", "examples": examples}
        worker = post_in_background(f"{srv.base}/v1/topics", body)
        # the topic transaction is open while its 500 examples are embedded and calibrated
        poll(lambda: transaction_open(database_url), 30, "the topic transaction to open")
        kill9(srv)
        worker.join(10)
    with server(tmp_path, data, database_url) as srv:
        index = assert_consistent(srv.base, tmp_path)
        assert int(index["version"]) >= version  # type: ignore[call-overload]
        names = {t["name"] for t in httpx.get(f"{srv.base}/v1/topics", headers=AUTH).json()["topics"]}
        assert "baking" not in names  # all or nothing: the uncommitted topic is gone, not half there
        assert query(database_url, "SELECT count(*) FROM exemplars WHERE text LIKE '%variant%'") == [(0,)]
        again = httpx.post(f"{srv.base}/v1/topics", json=body, headers=AUTH, timeout=60)
        assert again.status_code == 201, again.text
        assert_consistent(srv.base, tmp_path)


# ---------------------------------------------------------------------------- artifacts and model at start-up
@pytest.mark.parametrize(
    ("victim", "damage"),
    [
        ("vectors.faiss", "truncate"),
        ("arrays.npz", "flip"),
        ("guard.json", "truncate"),
        ("vectors.faiss", "delete"),
    ],
)
def test_corrupt_index_artifact_is_detected_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, victim: str, damage: str
) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        assert client.post("/v1/topics", json={"name": "cooking", "examples": COOKING}).status_code == 201
    path = tmp_path / "index" / victim
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        path.write_bytes(raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:])
    else:
        path.unlink()
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        assert client.get("/v1/index/verify").json()["ok"] is True
        assert client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()["category"] == "cooking"
    lines = [r.getMessage() for r in caplog.records if "not usable" in r.getMessage()]
    assert lines and "rebuilding from the database" in lines[0] and str(tmp_path / "index") in lines[0]


def test_a_scoring_config_change_rebuilds_without_re_encoding_the_exemplars(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(make_settings(tmp_path), HashingEncoder())) as client:
        wait_ready(client)
        create_cooking(client)
        exemplars = client.get("/v1/index").json()["count"]
    config = tmp_path / "scoring.json"
    config.write_text(json.dumps({"evidence": 2}))
    counting = CountingEncoder()
    settings = make_settings(tmp_path, scoring_config=config)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings, counting)) as client:
        wait_ready(client)
        encoded_at_start = counting.texts
        assert client.get("/v1/index/verify").json()["ok"] is True
        verdict = client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
        assert verdict["category"] == "cooking" and len(verdict["evidence"]) == 2  # the new config serves
        checksum = client.get("/v1/index").json()["recent_builds"][0]["checksum"]
    assert any("configuration changed" in r.getMessage() and "reusing" in r.getMessage() for r in caplog.records)
    background = len(load_background(FIXTURES))
    assert encoded_at_start == background < exemplars, "only the background was encoded, no exemplar"
    # and the result equals a full build from nothing
    shutil.rmtree(tmp_path / "index")
    drop_stored_artifacts(settings.resolved_database_url)
    full = CountingEncoder()
    with TestClient(create_app(settings, full)) as client:
        wait_ready(client)
        assert full.texts >= exemplars + background
        assert client.get("/v1/index").json()["recent_builds"][0]["checksum"] == checksum


def _tampered_model(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("manifest.json", "tokenizer.json", "model.int8.onnx"):
        shutil.copy(source / name, target / name)
    raw = bytearray((target / "model.int8.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (target / "model.int8.onnx").write_bytes(bytes(raw))
    return target


def test_model_with_wrong_checksum_refuses_to_load(tmp_path: Path) -> None:
    base = ROOT / "models" / "base"
    if not (base / "model.int8.onnx").is_file():
        pytest.skip("no exported base model in models/base")
    model = _tampered_model(base, tmp_path / "model")
    with pytest.raises(ModelIntegrityError, match=r"model\.int8\.onnx"):
        build_encoder(make_settings(tmp_path, encoder="onnx", model_dir=model))


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = server_env()
    clean |= {"LIGHTGUARD_HOME": str(tmp_path), "LIGHTGUARD_DATA_DIR": str(FIXTURES)} | env
    cmd = [sys.executable, "-c", "from service.cli.main import main; main()", "serve", "--port", str(free_port())]
    return subprocess.run(cmd, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)


@pytest.mark.server
def test_serve_refuses_a_tampered_model(tmp_path: Path) -> None:
    base = ROOT / "models" / "base"
    if not (base / "model.int8.onnx").is_file():
        pytest.skip("no exported base model in models/base")
    model = _tampered_model(base, tmp_path / "model")
    done = _serve(tmp_path, LIGHTGUARD_ENCODER="onnx", LIGHTGUARD_MODEL_DIR=str(model))
    assert done.returncode != 0
    assert "ModelIntegrityError" in done.stderr and "manifest expects" in done.stderr


@pytest.mark.server
def test_serve_refuses_to_start_without_its_database(tmp_path: Path) -> None:
    done = _serve(
        tmp_path, LIGHTGUARD_ENCODER="hashing", LIGHTGUARD_DATABASE_URL="postgresql://lg:s3cret@127.0.0.1:1/none"
    )
    assert done.returncode != 0
    assert "DatabaseUnavailableError: cannot reach the database" in done.stderr
    assert "LIGHTGUARD_DATABASE_URL" in done.stderr and "s3cret" not in done.stderr


# ---------------------------------------------------------------------------- the database fails mid-run
def test_database_gone_mid_run_gives_503_never_a_guess(tmp_path: Path) -> None:
    """Keys live in the database, so a request cannot be authorised without it: 503 `database_unavailable`.

    (Classify routes check keys against a copy at most LIGHTGUARD_KEY_CACHE_TTL_S old, so with the default 1 s they
    answer for up to a second after the database goes; TTL 0 here makes the 503 immediate and the test exact.)
    """
    settings = make_settings(tmp_path, admin_key=ADMIN, key_cache_ttl_s=0)
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        assert client.post("/v1/classify", json={"text": "hello"}, headers=AUTH).status_code == 200
        # point the live service at a database that is not there (what a dropped server looks like to it)
        ctx.sessions.configure(bind=create_engine("postgresql+psycopg://lg:pw@127.0.0.1:1/gone"))
        for path, body in (("/v1/classify", {"text": "how do I bake bread"}), ("/v1/moderations", {"input": "hi"})):
            r = client.post(path, json=body, headers=AUTH)
            assert r.status_code == 503 and r.json()["error"] == "database_unavailable", r.text
            assert "pw" not in r.text and r.headers["retry-after"] == "5"
        assert client.post("/v1/topics", json={"name": "x", "examples": COOKING}, headers=AUTH).status_code == 503
        ctx.sessions.configure(bind=ctx.engine)  # the database is back: so is the service
        assert client.post("/v1/classify", json={"text": "hello"}, headers=AUTH).status_code == 200


def test_decision_log_failure_keeps_the_verdict(tmp_path: Path) -> None:
    """A decision-log write that fails (disk full, locked table) is logged and counted; the verdict is returned."""
    with TestClient(create_app(make_settings(tmp_path), HashingEncoder())) as client:
        wait_ready(client)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        expected = client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
        assert ctx.decision_log.flush()
        with sqlite3.connect(tmp_path / "lightguard.db") as conn:
            conn.execute(
                "CREATE TRIGGER no_room BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        r = client.post("/v1/classify", json={"texts": [COOKING_PARAPHRASE, "hello there"]})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["score"] == expected["score"]
        assert ctx.decision_log.flush()
        metrics = client.get("/metrics").text
        assert "lightguard_decision_log_failures_total 2.0" in metrics
        with session_scope(ctx.sessions) as session:
            assert session.query(Decision).count() == 1  # only the call before the fault was logged
